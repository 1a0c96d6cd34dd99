"""Dense pathways: on cpp_standalone, all-to-all synapses propagate events a row at a time.

A presynaptic event of an all-to-all pathway updates one contiguous row of synapses, and synapse k
of the row reaches postsynaptic neuron k (of its replica's block). Brian2's own template pushes the
row's synapse indices through the spike queue and gathers each synapse's postsynaptic index, which
keeps the compiler from vectorising. The templates in ``templates/cpp_standalone/`` (Brian2's,
derived with ``Templater.derive``) visit the row directly. Each target sees the same additions in
the same order; under Brian2's ``-ffast-math`` the compiler may regroup a statement's arithmetic
differently in the two loops, so results agree to rounding, not bit for bit
(``tests/test_dense_pathways.py``). Ensembles and single networks use the same template, and stay
equal bit for bit.
"""

from __future__ import annotations

import brian2 as b2
from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject


class DensePathwayCodeObject(CPPStandaloneCodeObject):
    """A cpp_standalone code object with the dense ``synapses`` and ``synapses_push_spikes``
    templates; every other template is Brian2's."""

    templater = CPPStandaloneCodeObject.templater.derive("biograd.models", templates_dir="templates/cpp_standalone")


def use_dense_pathways(synapses: b2.Synapses) -> None:
    """Propagate the on_pre pathways of ``synapses`` densely (on cpp_standalone).

    The synapses must be all to all within blocks of the target, created in (i, j) order
    (``connect()``, or one block per replica), between whole groups, without delays. The compiled
    binary checks the layout and the delays once and stops with a message naming the pathway if
    they do not hold.
    """
    if isinstance(synapses.source, b2.Subgroup) or isinstance(synapses.target, b2.Subgroup):
        raise ValueError(f"{synapses.name}: dense pathways connect whole groups, not subgroups")
    for pathway in synapses._pathways:
        if pathway.prepost == "pre":
            pathway.codeobj_class = DensePathwayCodeObject
