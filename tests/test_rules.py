"""One definition per learning rule: the float element defines it (``## rule db_sleep``, ``## rule dw``), the Loihi
variant takes it (``## rules``), the NxSDK export derives from it, and ``biograd check`` names the file and line of a
divergence."""

import re
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from biograd.cli import app
from biograd.export import write_netx
from biograd.models.composition import load_composition
from biograd.models.elements import equations_dir, load_element
from biograd.models.errors import ModelFileError
from biograd.models.loihi import check_rules, learning_rules, loihi_layers
from biograd.models.spec import NetworkSpec

SLEEP_DECAY = "- eta_sleep*lambda_sleep*b  # the sleep rule"


@pytest.fixture
def equations(tmp_path):
    """A copy of the model's equation files to edit."""
    folder = tmp_path / "equations"
    shutil.copytree(equations_dir(), folder)
    return folder


def edit(path, old: str, new: str) -> int:
    """Replace the one occurrence of ``old`` in ``path``; the 1-based line it was on."""
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return text[: text.index(old)].count("\n") + 1


def line_of(path, pattern: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if re.match(pattern, line))


def test_shipped_variants_take_the_float_rules_and_brian2_gets_them_written_out():
    """Brian2 gets the statements as they were written before the rules had names: the same code, the same runs."""
    forward, feedback = load_element("forward_synapse"), load_element("feedback_synapse")
    forward_loihi, feedback_loihi = load_element("forward_synapse_loihi"), load_element("feedback_synapse_loihi")
    for original, variant, rule in ((forward, forward_loihi, "dw"), (feedback, feedback_loihi, "db_sleep")):
        assert set(original.rules) == set(variant.rules) == {rule}
        assert variant.rules[rule].source == original.name and variant.rules[rule].path == original.eqs.path
        assert variant.rules[rule].line == original.rules[rule].line
    assert feedback.eqs.section("on_pre", "sleep_spike").code == "b += eta_sleep*(1 - scale_sleep + scale_sleep*" \
        "sigma_sleep_pre)*(x_sleep_post - x_mean_post) - eta_sleep*lambda_sleep*b"
    assert feedback_loihi.rules["db_sleep"].expression == feedback.rules["db_sleep"].expression[:-1] + "b_loihi"
    assert feedback_loihi.eqs.section("on_pre", "sleep_spike").code.splitlines()[2].endswith(
        f" + ({feedback_loihi.rules['db_sleep'].expression})")
    assert forward.eqs.section("on_pre", "learn").code == "w += eta*eps_error_post*n_error_total_post*x_trace_pre"
    assert "floor((acc_w + (eta*eps_error_post*n_error_total_post*x_trace_pre))/w_res + rand())" in \
        forward_loihi.eqs.section("on_pre", "learn").code


def test_a_rule_edit_changes_float_loihi_and_export(equations):
    """The README's kind of edit, once in feedback_synapse.eqs (the decay gated by the lower neuron's trace) and once
    in forward_synapse.eqs (twice the step): the float element, its Loihi variant and the exported text all change."""
    spec = NetworkSpec(sizes=(20, 10, 10), precision="loihi")
    before = learning_rules(spec)
    edit(equations / "feedback_synapse.eqs", SLEEP_DECAY, "- eta_sleep*lambda_sleep*x_sleep_post*b  # the sleep rule")
    edit(equations / "forward_synapse.eqs", "\neta*eps_error_post", "\n2*eta*eps_error_post")
    float_, loihi = (load_element(equations / f"feedback_synapse{s}.eqs") for s in ("", "_loihi"))
    assert float_.eqs.section("on_pre", "sleep_spike").code.endswith("- eta_sleep*lambda_sleep*x_sleep_post*b")
    assert loihi.eqs.section("on_pre", "sleep_spike").code.splitlines()[2].endswith(
        "- eta_sleep*lambda_sleep*x_sleep_post*b_loihi)")
    assert "floor((acc_w + (2*eta*eps_error_post" in load_element(equations / "forward_synapse_loihi.eqs").eqs.section(
        "on_pre", "learn").code
    after = learning_rules(spec.using(equations))
    hebbian, mean, decay = before["feedback2"].text.removeprefix("dw = ").split(" - ")
    *kept, gated = after["feedback2"].text.removeprefix("dw = ").split(" - ")
    assert decay.endswith("*x0*w") and kept == [hebbian, mean] and gated.endswith("*x0*y1*w")  # now on x0*y1*w,
    value = {term: int(m) * 2.0 ** int(e) for term in (decay, gated) for m, e in [re.match(r"(\d+)\*2\^(-?\d+)",
                                                                                          term).groups()]}
    assert value[gated] == pytest.approx(value[decay] / 63, rel=2**-8)  # its scale over the trace's impulse (63)
    for l in (1, 2):  # mantissa m*2^e -> m*2^(e+1)
        m, e = re.match(r"dw = (\d+)\*2\^(-?\d+)\*x1\*y1", before[f"forward{l}"].text).groups()
        assert after[f"forward{l}"].text == f"dw = {m}*2^{int(e) + 1}*x1*y1 - {m}*2^{int(e) + 1}*x1*y2"


def test_export_carries_the_learning_epoch(tmp_path):
    spec = NetworkSpec(sizes=(20, 10, 10), precision="loihi", params={"feedback_synapse": {"t_epoch_sleep": 4}})
    rules = learning_rules(spec)
    layers = loihi_layers(spec, [np.zeros((10, 20)), np.zeros((10, 10))])
    write_netx(tmp_path / "net.net", layers, rules=rules, provenance={})
    with h5py.File(tmp_path / "net.net") as f:
        assert f["loihi1/learning/feedback2"][()].decode() == rules["feedback2"].text
        assert f["loihi1/learning/feedback2"].attrs["tEpoch"] == 4  # t_epoch_sleep
        assert f["loihi1/learning/forward1"].attrs["tEpoch"] == spec.n_slot  # once per sample


@pytest.mark.slow  # ~15 s: builds and checks whole compositions of a copied equations folder
def test_a_variant_that_repeats_the_rule_is_reported_with_file_and_line(equations):
    """feedback_synapse_loihi.eqs with its own copy of the sleep rule and its parameters (as before the rule had one
    definition): `biograd check` fails with one line naming the file and the line that changes b."""
    loihi = equations / "feedback_synapse_loihi.eqs"
    edit(loihi, "## rules feedback_synapse\ndb_sleep: b -> b_loihi", "")
    edit(equations / "feedback_synapse_loihi.yaml", "parameters:\n", "parameters:\n" + "".join(
        f"  {name}: {{value: {value}, description: d, reference: r}}\n"
        for name, value in (("eta_sleep", 3e-4), ("lambda_sleep", 0.5), ("scale_sleep", 0))))
    edit(loihi, "n_steps_sleep*b_res + db_sleep", "n_steps_sleep*b_res + eta_sleep*(1 - scale_sleep + scale_sleep*"
         "sigma_sleep_pre)*(x_sleep_post - x_mean_post) - eta_sleep*lambda_sleep*b_loihi")
    applies = line_of(loihi, r"b = clip\(b_loihi")
    result = CliRunner().invoke(app, ["check", str(equations)])
    assert result.exit_code == 1
    error = next(line for line in result.output.splitlines() if line.startswith("error"))
    assert f"feedback_synapse_loihi.eqs:{applies}: changes b without the rule db_sleep of feedback_synapse.eqs:" \
           f"{line_of(equations / 'feedback_synapse.eqs', r'## rule db_sleep') + 1}" in error
    assert "ok    feedback_synapse_loihi.eqs" in result.output  # the file alone is valid Brian2


def test_a_rule_term_without_a_trace_is_reported_with_file_and_line(equations):
    """The sign-only Hebbian term: the float model and its Loihi variant run it, Loihi's learning engine cannot."""
    line = edit(equations / "feedback_synapse.eqs", "sigma_sleep_pre)*(x_sleep_post - x_mean_post)",
                "sigma_sleep_pre)*sign(x_sleep_post - x_mean_post)")
    load_composition((2, 2, 2), "sleep", "regular", {}, equations, "loihi")  # composes
    with pytest.raises(ModelFileError, match=rf"feedback_synapse.eqs:{line}: rule db_sleep \(feedback_synapse_loihi, "
                       r"feedback2\) at Loihi precision: the term .*sign\(.*\) is no product of x0, x1"):
        check_rules(equations)


@pytest.mark.parametrize(("old", "new", "problem"), [
    ("db_sleep: b -> b_loihi", "db_sleeps: b -> b_loihi", "'db_sleeps' is not a rule of feedback_synapse.eqs"),
    ("db_sleep: b -> b_loihi", "db_sleep: w -> b_loihi", "w not in the rule db_sleep of feedback_synapse.eqs:"),
    ("db_sleep: b -> b_loihi", "db_sleep: b => b_loihi",
     "'## rules feedback_synapse' line 'db_sleep: b => b_loihi': expected NAME or NAME: old -> new"),
    ("+ db_sleep\n", "+ 0\n", "rule 'db_sleep' is used by no statement"),
])
def test_a_wrong_rules_line_is_reported_with_file_and_line(equations, old, new, problem):
    loihi = equations / "feedback_synapse_loihi.eqs"
    line = line_of(loihi, r"db_sleep: b -> b_loihi")
    edit(loihi, old, new)
    with pytest.raises(ModelFileError, match=re.escape(f"feedback_synapse_loihi.eqs:{line}: {problem}")):
        load_element(loihi)


def test_the_exported_weight_is_the_name_the_variant_reads_it_by(equations):
    """The weight w of the exported rule is whatever the variant's '## rules' line renames b to, not a fixed suffix."""
    loihi = equations / "feedback_synapse_loihi.eqs"
    loihi.write_text(loihi.read_text().replace("b_loihi", "b_chip"))
    spec = NetworkSpec(sizes=(20, 10, 10), precision="loihi")
    assert learning_rules(spec.using(equations))["feedback2"] == learning_rules(spec)["feedback2"]


def test_a_variant_that_runs_the_rule_on_another_event_is_reported_at_its_line(equations):
    loihi = equations / "feedback_synapse_loihi.eqs"
    edit(loihi, "## on_pre err_pos\n", "## on_pre err_pos\nacc_sleep += db_sleep\n")
    line = line_of(loihi, r"acc_sleep \+= db_sleep")
    with pytest.raises(ModelFileError, match=rf"feedback_synapse_loihi.eqs:{line}: "
                       r"the rule db_sleep runs on on_pre sleep_spike in feedback_synapse.eqs, here on on_pre err_pos, "
                       "on_pre sleep_spike"):
        load_composition((2, 2, 2), "sleep", "regular", {}, equations, "loihi")


@pytest.mark.slow  # ~15 s: builds and checks whole compositions of a copied equations folder
def test_a_variant_takes_the_parameters_its_rules_read_from_the_source_table(equations):
    """One definition per parameter: an edit of eta_sleep, lambda_sleep or scale_sleep (eta) in the float table changes
    the Loihi variant and its export too; a config's override of either element's name reaches both; an override out
    of bounds names the table that defines it; a Loihi table that repeats one with another value is refused at its
    line, naming the source's."""
    feedback_loihi = load_element("feedback_synapse_loihi")
    assert {name: feedback_loihi.table_path_of(name).name for name in ("eta_sleep", "lambda_sleep", "scale_sleep",
                                                                        "t_epoch_sleep")} == {
        "eta_sleep": "feedback_synapse.yaml", "lambda_sleep": "feedback_synapse.yaml",
        "scale_sleep": "feedback_synapse.yaml", "t_epoch_sleep": "feedback_synapse_loihi.yaml"}
    assert load_element("forward_synapse_loihi").table_path_of("eta").name == "forward_synapse.yaml"
    spec = NetworkSpec(sizes=(20, 10, 10), precision="loihi")
    before = learning_rules(spec.using(equations))
    edit(equations / "feedback_synapse.yaml", "value: 0.0003", "value: 0.0006")
    edit(equations / "forward_synapse.yaml", "value: 0.03", "value: 0.06")
    chip = load_composition((4, 3, 3, 2), "sleep", "regular", {}, equations, "loihi")
    assert float(chip.elements["feedback_synapse_loihi"].values["eta_sleep"]) == 0.0006
    assert float(chip.elements["forward_synapse_loihi"].values["eta"]) == 0.06
    after = learning_rules(spec.using(equations))
    assert after["feedback2"] != before["feedback2"] and after["forward1"] != before["forward1"]
    for written in ("feedback_synapse", "feedback_synapse_loihi"):
        chip = load_composition((4, 3, 3, 2), "sleep", "regular", {written: {"lambda_sleep": "0.25"}}, equations,
                                "loihi")
        assert float(chip.elements["feedback_synapse_loihi"].values["lambda_sleep"]) == 0.25
    with pytest.raises(ModelFileError, match=rf"{re.escape(str(equations / 'feedback_synapse.yaml'))}: "
                       r"model.params.feedback_synapse.scale_sleep: parameter 'scale_sleep' = 2.0 is outside"):
        load_composition((4, 3, 3, 2), "sleep", "regular", {"feedback_synapse": {"scale_sleep": "2"}}, equations,
                         "loihi")
    table = equations / "feedback_synapse_loihi.yaml"
    line = edit(table, "parameters:\n", "parameters:\n  lambda_sleep: {value: 0.5, description: d, reference: r}\n")
    assert float(load_element(equations / "feedback_synapse_loihi.eqs").values["lambda_sleep"]) == 0.5  # same value
    edit(table, "lambda_sleep: {value: 0.5,", "lambda_sleep: {value: 0.4,")
    source_line = line_of(equations / "feedback_synapse.yaml", r"  lambda_sleep:")
    result = CliRunner().invoke(app, ["check", str(equations)])
    assert result.exit_code == 1
    assert f"feedback_synapse_loihi.yaml:{line + 1}: parameter 'lambda_sleep' = 0.4 here, 0.5 in " \
           f"feedback_synapse.yaml:{source_line}, whose value the rule db_sleep taken from feedback_synapse reads: " \
           "remove it here" in result.output


def test_a_variant_that_repeats_a_parameter_with_another_value_is_refused(equations):
    """A parameter that a Loihi-precision element repeats from the element it replaces (sleep_noise_loihi's p_noise,
    soma_loihi's eta_h) must keep the original's value: a config's override of either reaches both, so tables that
    start apart would silently give the two precisions different models."""
    load_composition((3, 3, 2), "sleep", "regular", {}, equations, "loihi")  # today's tables agree
    edit(equations / "sleep_noise_loihi.yaml", "    value: 0.5\n", "    value: 0.25\n")
    line, source_line = (line_of(equations / f"{name}.yaml", r"  p_noise:") for name in ("sleep_noise_loihi",
                                                                                         "sleep_noise"))
    with pytest.raises(ModelFileError, match=rf"sleep_noise_loihi.yaml:{line}: parameter 'p_noise' = 0.25 here, 0.5 "
                       rf"in sleep_noise.yaml:{source_line}, the element this one replaces"):
        load_composition((3, 3, 2), "sleep", "regular", {}, equations, "loihi")
