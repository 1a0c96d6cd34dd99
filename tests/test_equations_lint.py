"""Lint every element file shipped in equations/: loads, documents itself, passes Brian2's unit checks."""

import pytest

from biograd.describe import describe_element, describe_model
from biograd.elements import check_units, equations_dir, load_element
from biograd.models.spec import NetworkSpec

FILES = sorted(equations_dir().glob("*.eqs"))


def test_every_eqs_file_has_a_table_and_every_table_an_eqs_file():
    eqs = {p.stem for p in FILES}
    tables = {p.stem for p in equations_dir().glob("*.yaml")}
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
    model = describe_model(NetworkSpec(sizes=(784, 500, 10)))
    for element in ("schedule", "soma", "apical", "teacher", "error_events", "forward_synapse", "feedback_synapse"):
        assert f"### `{element}`" in model
