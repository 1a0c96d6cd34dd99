{#
Brian2's cpp_standalone `synapses` template, for an on_pre pathway with zero delay whose synapses are
dense blocks (biograd.models.dense_pathways): presynaptic neuron i owns synapses i*m .. i*m + m - 1,
m = N / N_pre, which reach postsynaptic neurons b*m .. b*m + m - 1 of its block b = i // (N_pre / B),
B = N_post / m blocks (one block: all to all; B blocks: an ensemble of B networks).

Instead of pushing synapse indices into the spike queue and gathering the postsynaptic index of each,
every event of the source group visits its row of synapses directly: the postsynaptic index is the
loop counter plus an offset and the presynaptic index is the event's, so the compiler vectorises the row
(and computes presynaptic factors once per event). Each target sees the same additions
in the same order as with Brian2's template (events in ascending index order); the compiler, with
Brian2's -ffast-math, may regroup the arithmetic of a statement differently in the two loops, so
results agree to rounding (tests/test_dense_pathways.py). The layout is checked before each run
(a message on stdout, which Brian2 shows when the binary fails). No `#pragma GCC ivdep`: code that
writes a presynaptic variable has a dependency along the row, which the compiler must keep.
#}
{% extends 'common_synapses.cpp' %}

{# USES_VARIABLES { _synaptic_pre, _synaptic_post, delay } #}
{% set _n_sources = pathway.source.N %}
{% set _n_targets = pathway.target.N %}

{% block before_code %}
    // the synapses must be all-to-all blocks in (i, j) order, without delays
    const size_t _n_synapses = _num_synaptic_pre;
    const size_t _row = _n_synapses / {{_n_sources}};  // synapses per presynaptic neuron
    bool _dense = _row > 0 && _row * {{_n_sources}} == _n_synapses && {{_n_targets}} % _row == 0
                  && {{_n_sources}} % ({{_n_targets}} / _row) == 0;
    const size_t _pre_per_block = _dense ? {{_n_sources}} / ({{_n_targets}} / _row) : 1;
    for (size_t _s = 0; _dense && _s < _n_synapses; _s++)
    {
        const size_t _i = _s / _row;
        _dense = (size_t){{get_array_name(variables['_synaptic_pre'])}}[_s] == _i
                 && (size_t){{get_array_name(variables['_synaptic_post'])}}[_s] == (_i / _pre_per_block) * _row + _s % _row;
    }
    {% if variables['delay'].scalar %}
    _dense = _dense && {{get_array_name(variables['delay'])}}[0] == 0;
    {% else %}
    for (size_t _s = 0; _dense && _s < _n_synapses; _s++)
        _dense = {{get_array_name(variables['delay'])}}[_s] == 0;
    {% endif %}
    if (!_dense && _n_synapses > 0)
    {
        std::cout << "{{pathway.name}}: the dense pathway template needs all-to-all synapses within blocks, "
                  << "created in (i, j) order, without delays" << std::endl;
        std::exit(1);
    }
{% endblock %}

{% block maincode %}
    {# the source group's events (the global array brian::_array_..., not a pointer of this code object) #}
    {% set _events = get_array_name(pathway.source.variables[pathway.eventspace_name])[4:] %}
    {# the generated loads of the synapse's indices, replaced by the row's: the postsynaptic index, of
       size_t and linear in _k, lets the compiler vectorise without gathers; the presynaptic index is the
       event's, constant along the row, so the compiler computes presynaptic factors (a sleep spike's
       input spread: a square root and a division) once per event instead of once per synapse
       (tests/test_dense_pathways.py checks that both replacements apply). -ffast-math may then group a
       statement's products differently than Brian2's loop: equal to rounding. #}
    {% set _post_load = 'int32_t _postsynaptic_idx = ' ~ get_array_name(variables['_synaptic_post']) ~ '[_idx]' %}
    {% set _pre_load = 'int32_t _presynaptic_idx = ' ~ get_array_name(variables['_synaptic_pre']) ~ '[_idx]' %}

    // scalar code
    const size_t _vectorisation_idx = -1;
    {{scalar_code|autoindent}}

    const size_t _n_synapses = _num_synaptic_pre;
    if (_n_synapses == 0)
        return;
    const size_t _row = _n_synapses / {{_n_sources}};  // checked before the run
    const size_t _pre_per_block = {{_n_sources}} / ({{_n_targets}} / _row);
    const int32_t _n_events = {{_events}}[{{_n_sources}}];
    for (int32_t _event = 0; _event < _n_events; _event++)
    {
        const int32_t _pre_idx = {{_events}}[_event];
        const size_t _syn_start = (size_t)_pre_idx * _row;
        const size_t _post_start = ((size_t)_pre_idx / _pre_per_block) * _row;
        for (size_t _k = 0; _k < _row; _k++)
        {
            const size_t _idx = _syn_start + _k;
            const size_t _vectorisation_idx = _idx;
            {{vector_code|autoindent|replace(_post_load, 'size_t _postsynaptic_idx = _post_start + _k')|replace(_pre_load, 'int32_t _presynaptic_idx = _pre_idx')}}
        }
    }
{% endblock %}
