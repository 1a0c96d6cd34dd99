"""Lint every element file shipped in equations/: loads, documents itself, passes Brian2's unit checks."""

import pytest

from biograd.models.describe import describe_element, describe_model
from biograd.models.elements import check_units, equations_dir, load_element
from biograd.models.spec import NetworkSpec

FILES = sorted(equations_dir().glob("*.eqs"))


def test_every_eqs_file_has_a_table_and_every_table_an_eqs_file():
    eqs = {p.stem for p in FILES}
    tables = {p.stem for p in equations_dir().glob("*.yaml")} - {"network"}  # network.yaml: the composition
    assert eqs and eqs == tables


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_element_loads_and_units_check(path):
    el = load_element(path)
    check_units(el)
    assert el.eqs.title and "Reference" in el.eqs.header
    for line in el.eqs.section("model").lines:
        assert not line.code or line.comment, f"{path.name}:{line.number} lacks a comment"
    for name, param in el.table.parameters.items():
        assert param.description and param.reference, name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_reconstructed_choice_is_marked(path):
    el = load_element(path)
    assert "Reconstruction" in el.eqs.header or "locality" in el.eqs.header or "Reference" in el.eqs.header
    for name, param in el.table.parameters.items():
        if "reconstruction" in param.reference.lower():
            assert param.reconstruction, f"{path.name}: {name} cites a reconstruction but is not marked"


def test_describe_element_and_model():
    text = describe_element(load_element("soma"))
    assert "| `v_th` |" in text and "dv_soma/dt" in text
    model = describe_model(NetworkSpec(sizes=(784, 500, 500, 10)))
    for group in ("layer0`: NeuronGroup(784)", "layer2`: NeuronGroup(500), hidden", "layer3`: NeuronGroup(10), output",
                  "forward3`: Synapses(layer2, layer3)", "feedback3`: Synapses(layer3, layer2)"):
        assert f"## `{group}" in model
    composed = ["threshold='(v_soma > v_th and (forward > 0 or sleep_response > 0))",  # as Brian2 gets it
                "'err_pos': '''err_window > 0 and delta_apical > 0 and q_error >= 0.5''',",
                "'pre_sleep_spike': '''b += eta_sleep*", "| `gain_error` | 8 | network | set per layer |",
                "| `gain_error` | 1 | network | set per layer |", "| `eta` | 0.03 | forward_synapse |"]
    for code in composed:
        assert code in model, code
