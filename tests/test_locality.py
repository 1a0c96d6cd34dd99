"""Locality audit: every learning rule of the shipped model is local except the declared transpose relay."""

import shutil

import pytest
import yaml

from biograd.analysis.locality import COLUMNS, audit, audit_element, violations
from biograd.models.elements import equations_dir, load_element

EQS = equations_dir()


@pytest.fixture(scope="module")
def df():
    return audit()


def _copy(tmp_path, *names):
    for name in names:
        for suffix in (".eqs", ".yaml"):
            shutil.copy(EQS / f"{name}{suffix}", tmp_path / f"{name}{suffix}")


def _edit_eqs(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def _add_external(path, name, **spec):
    table = yaml.safe_load(path.read_text())
    table.setdefault("external", {})[name] = {"description": f"test external {name}", **spec}
    path.write_text(yaml.safe_dump(table, sort_keys=False))


def test_shipped_model_has_no_undeclared_violations(df):
    assert violations(df).empty, violations(df)[["element", "line", "statement", "reason"]]


def test_transpose_relay_is_flagged_as_weight_transport_and_declared(df):
    relay = df[df.element == "transpose_relay"]
    rules = relay[relay.section == "on_post"]
    assert len(rules) == 2
    assert not rules.local.any() and rules.declared_exception.all()
    assert all("weight transport" in reason for reason in rules.reason)
    assert all(writes == ("d_apical_pre",) for writes in rules.writes)
    assert set(df[~df.local].element) == {"transpose_relay"}


@pytest.mark.parametrize("element", ["forward_synapse", "feedback_synapse"])
def test_forward_and_feedback_rules_are_local_and_event_driven(df, element):
    rows = df[df.element == element]
    rules = rows[rows.section.isin(["on_pre", "on_post"])]
    assert len(rules) >= 2
    assert rules.local.all() and not rows.declared_exception.any()
    assert (rules.trigger == "event-driven").all() and rules.event.notna().all()
    assert not (rows.trigger == "clock-driven").any()  # no hidden clock-driven synaptic dynamics
    for category in rules.category:
        assert "global_function" not in category.values() and "unknown" not in category.values()


def test_forward_update_is_three_factor(df):
    rows = df[(df.element == "forward_synapse") & (df.event == "learn")]
    assert len(rows) == 1 and set(rows.section) == {"on_pre"}
    for category, writes in zip(rows.category, rows.writes, strict=True):
        assert writes == ("w",)
        assert category["eps_error_post"] == "post_variable" and category["x_trace_pre"] == "pre_variable"


def test_teacher_and_inputs_are_reported_not_failed(df):
    teacher = df[(df.element == "teacher") & df.category.map(lambda c: "teacher" in c.values())]
    assert len(teacher) == 1 and teacher.local.all() and "teacher" in teacher.reason.iloc[0]
    schedule = df[df.category.map(lambda c: c.get("slot_kind") == "schedule")]
    assert set(schedule.element) == {"schedule"}


def test_rule_writing_presynaptic_state_from_on_post_is_a_violation(tmp_path):
    _copy(tmp_path, "forward_synapse")
    _add_external(tmp_path / "forward_synapse.yaml", "u_soma_pre")
    _edit_eqs(tmp_path / "forward_synapse.eqs", "## on_pre learn\n",
              "## on_post err_pos\nu_soma_pre += w\n\n## on_pre learn\n")
    bad = violations(audit(tmp_path))
    assert list(bad.statement) == ["u_soma_pre += w"]
    assert "weight transport" in bad.reason.iloc[0] and bad.section.iloc[0] == "on_post"


def test_rule_reading_a_global_function_is_a_violation(tmp_path):
    _copy(tmp_path, "forward_synapse")
    _add_external(tmp_path / "forward_synapse.yaml", "global_err", kind="function", args=["t"])
    _edit_eqs(tmp_path / "forward_synapse.eqs", "\neta*eps_error_post*n_error_total_post*x_trace_pre",
              "\neta*global_err(t)*eps_error_post*n_error_total_post*x_trace_pre")  # the rule dw
    bad = violations(audit(tmp_path))
    assert list(bad.statement) == ["eta*global_err(t)*eps_error_post*n_error_total_post*x_trace_pre",  # the rule,
                                   "w += eta*global_err(t)*eps_error_post*n_error_total_post*x_trace_pre"]  # applied
    assert (bad.category.map(lambda c: c["global_err"]) == "global_function").all()
    assert all("global_err" in reason for reason in bad.reason)


def test_declaration_marks_but_does_not_hide_the_violation(tmp_path):
    _copy(tmp_path, "forward_synapse")
    path = tmp_path / "forward_synapse.eqs"
    _add_external(tmp_path / "forward_synapse.yaml", "u_soma_pre")
    _edit_eqs(path, "## on_pre learn\n", "## on_post err_pos\nu_soma_pre += w\n\n## on_pre learn\n")
    _edit_eqs(path, "\n## model\n", "# locality: non-local (weight transport) - declared exception\n\n## model\n")
    rows = audit(tmp_path)
    assert violations(rows).empty
    flagged = rows[~rows.local]
    assert list(flagged.statement) == ["u_soma_pre += w"] and flagged.declared_exception.all()
    assert "weight transport" in flagged.reason.iloc[0]
    assert not rows[rows.local].declared_exception.any()


def test_transpose_relay_without_its_declaration_is_a_violation(tmp_path):
    _copy(tmp_path, "transpose_relay", "forward_synapse")
    path = tmp_path / "transpose_relay.eqs"
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True) if "locality:" not in line))
    findings = audit_element(load_element(path))
    assert [f.category["w"] for f in findings] == ["synapse_variable"] * 2  # w comes from the composed synapse
    assert all(not f.local and not f.declared_exception and "weight transport" in f.reason for f in findings)


def test_one_row_per_statement_with_documented_columns(df):
    assert list(df.columns) == COLUMNS
    expected = set()
    for path in sorted(EQS.glob("*.eqs")):
        in_sections = False
        for number, raw in enumerate(path.read_text().splitlines(), start=1):
            in_sections = in_sections or raw.startswith("##")
            if in_sections and raw.partition("#")[0].strip():
                expected.add((path.stem, number))
    assert len(df) == len(expected)
    assert set(zip(df.element, df.line, strict=True)) == expected
    assert set(df.trigger) == {"event-driven", "clock-driven", "none"}
    assert (df[df.section.isin(["on_pre", "on_post", "on_event", "reset"])].trigger == "event-driven").all()
    assert (df[df.section.isin(["slot_start", "threshold", "event"])].trigger == "clock-driven").all()
