{#
Brian2's cpp_standalone `threshold` template, gated and without branches (biograd.models.thresholds):
the neurons are tested only while the condition's conjuncts that are the same for every neuron
(scalar_gate: the phase that the event belongs to) hold, and each tested neuron is written to the event
list and counted only if its condition holds, `events[count] = i; count += cond`, instead of a branch per
neuron. The list, its order and the random numbers drawn are Brian2's (while the gate is closed the
condition draws none). Refractoriness keeps Brian2's branch.
#}
{# USES_VARIABLES { N } #}
{% extends 'common_group.cpp' %}
{% block maincode %}
    //// MAIN CODE ////////////
    // scalar code
    const int _vectorisation_idx = -1;
    {{scalar_code|autoindent}}

    {% set _eventspace = get_array_name(eventspace_variable) %}
    {% set _gate_code, _gate = scalar_gate(vector_code) %}

    long _count = 0;
    {% if _gate %}
    bool _gate_open;  // the event's phase: the condition's conjuncts that are the same for every neuron
    {
        {{_gate_code|autoindent}}
        _gate_open = {{_gate}};
    }
    if (_gate_open)
    {% endif %}
    for(size_t _idx=0; _idx<N; _idx++)
    {
        const size_t _vectorisation_idx = _idx;
        {{vector_code|autoindent}}
        {% if _uses_refractory %}
        if(_cond) {
            {{_eventspace}}[_count++] = _idx;
            {{not_refractory}}[_idx] = false;
            {{lastspike}}[_idx] = {{t}};
        }
        {% else %}
        {{_eventspace}}[_count] = _idx;  // _count <= _idx < N: overwritten by the next event, if any
        _count += (_cond != 0);
        {% endif %}
    }
    {{_eventspace}}[N] = _count;
{% endblock %}

{% block after_code %}
{% set _eventspace = get_array_name(eventspace_variable) %}
{{_eventspace}}[N] = 0;  // Note that this is not an off-by-1-error: the array has N+1 elements
{% endblock %}
