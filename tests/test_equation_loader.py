"""The element loader on good and broken files: every error names the file, the line and the problem."""

import shutil

import brian2 as b2
import pytest

from biograd.models.elements import check_units, compose, equations_dir, load_element
from biograd.models.errors import ModelFileError
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec

GATE = "g_soma = int(A_soma > 0)*(1 - gate_saturation*int(A_soma >= n_f*v_th)) : 1"  # the gate line of soma.eqs


@pytest.fixture
def soma(tmp_path):
    """A private copy of soma.eqs/.yaml to break."""
    for suffix in (".eqs", ".yaml"):
        shutil.copy(equations_dir() / f"soma{suffix}", tmp_path / f"soma{suffix}")
    return tmp_path / "soma.eqs"


def edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def line_of(path, fragment):
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def error_of(path, **kwargs) -> ModelFileError:
    with pytest.raises(ModelFileError) as info:
        el = load_element(path)
        check_units(el)
    return info.value


def test_good_copy_loads(soma):
    el = load_element(soma)
    assert el.values["v_th"] == 1 and {"u_soma", "v_soma", "g_soma"} <= el.variables
    assert el.namespace.keys() == {"delta_u", "delta_v", "v_th", "gate_saturation", "eta_h", "r_sleep"}


def test_equation_syntax_error_names_line(soma):
    edit(soma, "dA_soma/dt = forward*u_soma/dt : 1", "dA_soma/dt = forward*u_soma/dt : : 1")
    err = error_of(soma)
    assert err.path == soma and err.line == line_of(soma, "dA_soma/dt")
    assert "invalid Brian2 equation" in str(err)


def test_wrong_unit_is_reported_with_line(soma):
    edit(soma, "du_soma/dt = -delta_u*u_soma/dt : 1", "du_soma/dt = -delta_u*u_soma : 1")
    err = error_of(soma)
    assert err.path == soma and err.line == line_of(soma, "du_soma/dt")
    assert "does not have the expected unit hertz" in err.problem and "-delta_u*u_soma" in err.problem


def test_parameter_with_wrong_unit_is_rejected(soma):
    edit(soma.with_suffix(".yaml"), "value: 0\n", "value: 5 ms\n")
    err = error_of(soma)
    assert err.path == soma.with_suffix(".yaml") and "delta_v" in err.problem
    assert "different units" in err.problem


def test_unknown_table_key(soma):
    table = soma.with_suffix(".yaml")
    edit(table, "    reconstruction: true\n", "    reconstruction: true\n    colour: blue\n")
    err = error_of(soma)
    assert err.path == table and "colour" in err.problem and "unknown key" in err.problem
    assert err.line == line_of(table, "colour")


def test_unused_parameter(soma):
    table = soma.with_suffix(".yaml")
    edit(table, "parameters:\n", "parameters:\n  tau_x:\n    value: 3 ms\n    description: d\n    reference: r\n")
    err = error_of(soma)
    assert err.path == table and "'tau_x' is not used" in err.problem


@pytest.mark.parametrize("name", ["N", "xi", "pi", "e", "dt"])
def test_reserved_parameter_name(soma, name):
    table = soma.with_suffix(".yaml")
    edit(table, "parameters:\n", f"parameters:\n  {name}:\n    value: 3\n    description: d\n    reference: r\n")
    err = error_of(soma)
    assert err.path == table and "reserved" in err.problem and err.line == line_of(table, f"  {name}:")


def test_reserved_variable_name(soma):
    edit(soma, f"{GATE}  #", f"{GATE}  #")
    edit(soma, "## threshold", "")  # keep file valid otherwise
    edit(soma, "dA_soma/dt", "dN/dt = 0/dt : 1  # bad\ndA_soma/dt")
    err = error_of(soma)
    assert err.path == soma and ("reserved" in err.problem or "invalid Brian2 equation" in err.problem)
    assert err.line == line_of(soma, "dN/dt")


def test_value_outside_bounds(soma):
    table = soma.with_suffix(".yaml")
    edit(table, "value: 0.2\n", "value: 1.5\n")
    err = error_of(soma)
    assert err.path == table and "'r_sleep'" in err.problem and "outside its bounds" in err.problem


def test_bad_unit_string(soma):
    table = soma.with_suffix(".yaml")
    edit(table, "value: 0.01\n", "value: 0.01 parsec\n")
    err = error_of(soma)
    assert err.path == table and "unknown unit 'parsec'" in err.problem and err.line == line_of(table, "parsec")


def test_undefined_name(soma):
    edit(soma, "v_soma > v_th and", "v_soma > v_thresh and")
    err = error_of(soma)
    assert err.path == soma and "undefined name 'v_thresh'" in err.problem
    assert err.line == line_of(soma, "v_thresh")


def test_model_line_without_comment(soma):
    edit(soma, f"{GATE}  # pseudo-derivative gate, backprop's f'(x)", GATE)
    err = error_of(soma)
    assert "trailing comment" in err.problem and err.line == line_of(soma, "g_soma = int")


def test_unknown_section(soma):
    edit(soma, "## reset", "## rest")
    err = error_of(soma)
    assert "unknown section header '## rest'" in err.problem and err.line == line_of(soma, "## rest")


def test_element_name_must_match_file(soma):
    edit(soma.with_suffix(".yaml"), "element: soma", "element: dendrite")
    err = error_of(soma)
    assert "does not match the file name" in err.problem


def test_invalid_yaml(soma):
    edit(soma.with_suffix(".yaml"), "kind: neuron", "kind: [neuron")
    err = error_of(soma)
    assert err.path == soma.with_suffix(".yaml") and "invalid YAML" in err.problem and err.line is not None


def test_missing_table(soma):
    soma.with_suffix(".yaml").unlink()
    err = error_of(soma)
    assert "parameter table for soma.eqs not found" in err.problem


def test_compose_reports_missing_external():
    with pytest.raises(ModelFileError, match="external 'g_soma'.*neither defined"):
        compose([load_element("apical")])


def test_compose_rejects_double_definition():
    with pytest.raises(ModelFileError, match="variable 'x_trace' is also defined by element 'eligibility'"):
        compose([load_element("eligibility"), load_element("eligibility")])


def test_spec_override_checked_against_table_before_anything_is_built():
    with pytest.raises(ValueError, match=r"model.params.soma.v_thr: unknown parameter of soma \(delta_u, "):
        NetworkSpec(sizes=(4, 3, 2), params={"soma": {"v_thr": "2"}})
    with pytest.raises(ValueError, match=r"model.params.soma.v_th: parameter 'v_th' = 0\S* is outside its bounds"):
        NetworkSpec(sizes=(4, 3, 2), params={"soma": {"v_th": "0"}})
    with pytest.raises(ValueError, match="model.params.som: no element of that name in this network"):
        NetworkSpec(sizes=(4, 3, 2), params={"som": {"v_th": "2"}})  # was accepted and ignored
    with pytest.raises(ValueError, match="model.params.apical: no element of that name"):
        NetworkSpec(sizes=(4, 2), params={"apical": {}})  # no hidden layer, no apical compartment
    with pytest.raises(ValueError, match=r"model.params.network.n_e: .* is outside its bounds"):
        NetworkSpec(sizes=(4, 3, 2), params={"network": {"n_e": 0}})


def test_per_layer_error_gains_come_from_the_composition_file():
    """network.yaml's gain_hidden / gain_output reach the error_events element of each layer (the
    element's own table has no gain: an override there used to be accepted and then overwritten)."""
    net = BioGradNetwork(NetworkSpec(sizes=(4, 3, 3, 2), params={"network": {"gain_hidden": 16, "gain_output": 2}}),
                         slots=1)
    assert [float(net.layers[l].gain_error[:]) for l in (1, 2, 3)] == [16.0, 16.0, 2.0]
    with pytest.raises(ValueError, match=r"error_events.gain_error: unknown parameter of error_events; it is set "
                                         r"per layer in network.yaml \(hidden.set, output.set\)"):
        NetworkSpec(sizes=(4, 3, 2), params={"error_events": {"gain_error": 3}})


def test_network_numbers_come_from_the_composition_file():
    """dt, n_f, n_e, the slot codes and the teacher's level are read from the tables, and overridable."""
    spec = NetworkSpec(sizes=(4, 3, 2), params={"network": {"dt": "0.5 ms", "n_f": 7, "n_e": 3, "slot_sleep": 5},
                                                "teacher": {"y_high": 0.6}})
    net = BioGradNetwork(spec, slots=2)
    assert b2.defaultclock.dt == 0.5 * b2.ms and net.n_slot == 7 + 2 * 3 == spec.n_slot
    assert net.layers[0].namespace["slot_sleep"] == 5 and net.layers[2].namespace["y_high"] == 0.6
    assert spec.composition.slot_sleep(2) == 7


def test_spec_rejects_unknown_keys():
    with pytest.raises(ValueError, match="hidden_sizes"):
        NetworkSpec(sizes=(4, 2), hidden_sizes=(3,))


def test_override_takes_effect():
    net = BioGradNetwork(NetworkSpec(sizes=(4, 3, 2), params={"soma": {"v_th": "2.5"}}), slots=1)
    assert net.layers[1].namespace["v_th"] == 2.5 and net.specs[1].namespace["v_th"] == 2.5
    assert b2.get_dimensions(net.layers[1].namespace["delta_u"]).is_dimensionless
