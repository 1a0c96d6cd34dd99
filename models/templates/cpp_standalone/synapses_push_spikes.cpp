{#
The dense pathway template (synapses.cpp here) reads its source group's events directly: nothing is
pushed into a spike queue, and the queue is never prepared (no copy of the synapse indices).
#}
{% extends 'common_group.cpp' %}

{% block maincode %}
{% endblock %}
