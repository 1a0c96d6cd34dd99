"""The project's cpp_standalone templates (dense pathways: a synapse row at a time; gated thresholds) compute what
Brian2's templates compute."""

import re
from pathlib import Path

import brian2 as b2
import numpy as np
import pytest
from sklearn.datasets import load_digits
from support import TRAIN

from biograd.models.backend import Backend
from biograd.models.dense_pathways import use_dense_pathways
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec
from biograd.models.thresholds import scalar_gate

IMAGES, LABELS = load_digits(return_X_y=True)


def train_two_chunks(spec: NetworkSpec, backend: Backend, seed: int = 5):
    """Two chunks of four digits on ``backend``, each followed by a sleep slot for each feedback layer:
    the results, the final state and the initial state."""
    sleep = [spec.composition.slot_sleep(l) for l in range(2, len(spec.sizes))] if spec.feedback == "sleep" else []
    kinds = np.array([TRAIN] * 4 + sleep)
    net = BioGradNetwork(spec, slots=len(kinds), seed=seed, backend=backend)
    results = []
    for chunk in range(2):
        images, targets = np.zeros((len(kinds), 64)), np.zeros((len(kinds), 10))
        images[:4] = IMAGES[4 * chunk : 4 * chunk + 4] / 16
        targets[np.arange(4), LABELS[4 * chunk : 4 * chunk + 4]] = 1.0
        results.append(net.run_chunk(kinds, images, targets, values={"eta": 0.02}))
    return results, net.state, net.initial_states[0]


@pytest.mark.parametrize(("sizes", "feedback", "precision"), [((64, 20, 12, 10), "sleep", "float"),
                                                               ((64, 12, 10), "sleep", "loihi"),
                                                               ((64, 12, 10), "transpose", "float")])
def test_dense_pathways_agree_with_brian2_templates(standalone, tmp_path, sizes, feedback, precision):
    """Every pathway of the model (spikes, learning, error events, sleep spikes; Loihi's stochastic rounding draws
    its random numbers in the same order; transpose mode's on_post relay keeps Brian2's template beside them):
    identical spikes and error events, weights equal to rounding. Two hidden layers once (a hidden layer's errors
    from another's); the variants with one, which holds every kind of pathway, compile fewer files."""
    spec = NetworkSpec(sizes=sizes, feedback=feedback, precision=precision)
    dense_results, dense_state, initial = train_two_chunks(spec, standalone())
    generated = (Path(b2.get_device().project_dir) / "code_objects" / "forward1_pre_codeobject.cpp").read_text()
    assert "size_t _postsynaptic_idx = _post_start + _k;" in generated, "the row's index replaced the gather"
    learning = (Path(b2.get_device().project_dir) / "code_objects" / "forward1_pre_learn_codeobject.cpp").read_text()
    assert "int32_t _presynaptic_idx = _pre_idx;" in learning, "the event's presynaptic index, not a load"
    errors = (Path(b2.get_device().project_dir) / "code_objects" / "layer1_err_pos_thresholder_codeobject.cpp")
    assert "if (_gate_open)" in errors.read_text(), "error events tested in their window only"
    spikes = errors.with_name("layer1_spike_thresholder_codeobject.cpp").read_text()
    assert "if (_gate_open)" in spikes, "spikes tested only in the phases that have them"
    brian2_templates = Backend("cpp_standalone", tmp_path / "brian2_templates", dense_pathways=False)
    brian2_templates.activate()
    results, state, _ = train_two_chunks(spec, brian2_templates)
    for dense, brian in zip(dense_results, results, strict=True):
        for a, b in zip(dense.rates, brian.rates, strict=True):
            np.testing.assert_array_equal(a, b)
        for layer in brian.errors:
            np.testing.assert_array_equal(dense.errors[layer], brian.errors[layer])
    assert sum(np.abs(e).sum() for e in results[-1].errors.values()) > 0, "error events were sent"
    for a, b in [*zip(dense_state.W, state.W, strict=True), *((dense_state.B[k], state.B[k]) for k in state.B)]:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert all(np.any(state.B[k] != initial.B[k]) for k in state.B) or feedback != "sleep", "sleep changed B"


@pytest.mark.parametrize("case", ["sparse", "delayed"])
def test_synapses_that_are_not_dense_stop_the_binary(standalone, capfd, case):
    """The compiled layout check names the pathway: synapses that are not all to all, or a delay."""
    source = b2.NeuronGroup(4, "v : 1", threshold="True", reset="", name="source")
    target = b2.NeuronGroup(3, "v : 1", name="target")
    delay = {"delayed": 1 * b2.ms}.get(case)
    synapses = b2.Synapses(source, target, "w : 1", on_pre="v_post += w", delay=delay, name=case)
    synapses.connect(condition="i != j" if case == "sparse" else "True")
    use_dense_pathways(synapses)
    b2.run(1 * b2.ms, namespace={})
    with pytest.raises(RuntimeError, match="Project run failed"):
        b2.device.build(directory=b2.get_device().project_dir, run=True, with_output=False)
    assert f"{case}_pre: the dense pathway template needs all-to-all synapses" in capfd.readouterr().out


def test_subgroups_are_refused():
    group = b2.NeuronGroup(4, "v : 1", threshold="v > 1", reset="")
    synapses = b2.Synapses(group[:2], group[2:], on_pre="v_post += 1")
    with pytest.raises(ValueError, match="whole groups"):
        use_dense_pathways(synapses)


VECTOR_CODE = """const double A_soma = _ptr_array_layer1_A_soma[_idx];
const double v_soma = _ptr_array_layer1_v_soma[_idx];
const double q_error = _ptr_array_layer1_q_error[_idx];
const int32_t slot = _lio_2;
const int32_t k_step = _lio_3;
const double g_soma = int_(A_soma > 0);
const double err_window = int_((slot == slot_train) && (k_step >= n_f));
const char _cond = {condition};"""


@pytest.mark.parametrize(("condition", "gate", "defined"), [
    ("(err_window > 0) && (g_soma > 0) && (q_error >= 0.5)", "(err_window > 0)",  # an error event: its window
     ["slot", "k_step", "err_window"]),
    ("(v_soma > v_th) && _lio_1 && (slot > 0)", "(_lio_1) && (slot > 0)", ["slot"]),  # Brian2's hoisted terms too
    ("(_lio_1) && ((g_soma > 0) && (k_step < 3))", "(_lio_1) && (k_step < 3)", ["k_step"]),  # nested conjunctions
    ("((A_soma > 1) && (slot > 0)) || (_lio_2 && (A_soma > 0))", "((slot > 0)) || ((_lio_2))", ["slot"]),  # phases
    ("((A_soma > 1) && _lio_1) || (A_soma > 0)", "", []),  # one disjunct holds in every phase
    ("(A_soma > 1) && (g_soma > 0)", "", []),  # nothing the same for every neuron
    ("_lio_1 && (_rand(_vectorisation_idx) < p_noise)", "(_lio_1)", []),  # closed: no draw
    ("(_rand(_vectorisation_idx) < p_noise) && _lio_1", "", []),  # a draw whatever the phase
    ("(A_soma > 1) || (_lio_2 && (_rand(_vectorisation_idx) < p_noise))", "", []),
    ("(binom(_vectorisation_idx) > 2) && (slot > 0)", "", []),  # a stateful function of another name draws too
])
def test_scalar_gate_is_the_conjuncts_the_same_for_every_neuron(condition, gate, defined):
    """The gate, and the vector code's definitions it needs (in their order; none per neuron)."""
    code, expression = scalar_gate(VECTOR_CODE.format(condition=condition).splitlines())
    assert expression == gate
    assert re.findall(r"const \w+ (\w+) =", code) == defined


def test_scalar_gate_refuses_code_it_does_not_follow():
    """Brian2 writes a statement that reads a boolean variable as an if/else: the names it assigns are per neuron,
    so no gate (a gate naming them would not compile), and a draw outside the condition rules a gate out."""
    branch = ["const double v = _ptr_array_g_v[_idx];", "const char active = _ptr_array_g_active[_idx];",
              "double drive;", "if(!active)", "    drive = 0;", "else", "    drive = v;",
              "const char _cond = (_lio_1) && (drive > 1);"]
    assert scalar_gate(branch) == ("", "")
    drawn = ["const double r = _rand(_vectorisation_idx);", "const char _cond = (_lio_1) && (r < 0.5);"]
    assert scalar_gate(drawn) == ("", "")
