"""The docs follow the code and the configs (no compilation): every ``make`` target, ``biograd`` command and
option, repo path and RESULTS section that README.md, docs/*.md and runs/*.md name exists, and the numbers they
quote from parameter tables, configs and committed sweep tables equal them."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import typer.main
import yaml

import biograd.config
from biograd.cli import app
from biograd.config import load_config
from biograd.models.elements import equations_dir
from biograd.models.units import parse_quantity
from biograd.report import ENERGY_DISCUSSION
from biograd.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
EQUATIONS = equations_dir()
RUNS = ROOT / "runs"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), RUNS / "README.md", RUNS / "RESULTS.md"]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
REPO_DIRS = {"analysis", "biograd", "docs", "equations", "models", "runs", "scripts", "tests", ".ci"}
RUN_FILES = {"config.yaml", "sweep.yaml"}  # files a run or sweep writes, named by the docs without a folder
PATHLIKE = re.compile(r"(?:\.\./|\.ci/)?\w[\w.-]*(?:/[\w.-]+)*/?")  # not a bare extension (`.py`)
MODES = ("sleep", "fixed_random", "transpose")
CITATION = re.compile(r'RESULTS\.md(?: at commit ([0-9a-f]{7,40}))?, "([^"]+)"(?: and "([^"]+)")?')
#: values the docs name as alternatives to a table's value (``with `scale_sleep` = 1``), not as its value
ALTERNATIVES = {("gate_saturation", 1.0), ("dither_error", 0.0), ("scale_sleep", 1.0)}
#: how RESULTS.md names a setting's keys
SETTING = {"eta": "forward_synapse.eta", "gain": "network.gain_hidden", "lambda_sleep": "feedback_synapse.lambda_sleep",
           "eta_sleep": "feedback_synapse.eta_sleep"}


def rel(path) -> str:
    return str(path.relative_to(ROOT))


def code(text: str) -> list[str]:
    """Fenced blocks and inline code spans of a Markdown text."""
    return FENCE.findall(text) + re.findall(r"`([^`]+)`", FENCE.sub("", text))


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {t for rule in re.findall(r"^([A-Za-z][\w. -]*?)\s*:(?!=)", text, re.M) for t in rule.split()}


def table_values() -> dict[str, list]:
    """Every parameter of the equation files' tables: name -> its values (one per table that has it)."""
    values: dict[str, list] = {}
    for path in sorted(EQUATIONS.glob("*.yaml")):
        for name, entry in (yaml.safe_load(path.read_text()).get("parameters") or {}).items():
            values.setdefault(name, []).append(parse_quantity(str(entry["value"])))
    return values


def same(doc_value: str, value) -> bool:
    return abs(float(parse_quantity(doc_value)) - float(value)) <= 1e-9 * max(1.0, abs(float(value)))


def config(name: str):
    return load_config(RUNS / "configs" / f"{name}.yaml")


def composed(cfg, key: str) -> float:
    """The value of ``element.parameter`` in ``cfg``'s network, overrides applied (``network.*``: the composition
    file's; an element's Loihi replacement holds the element's parameters)."""
    element, name = key.split(".")
    composition = cfg.model.composition
    if element == "network":
        return float(composition.values[name])
    return float(next(el.values[name] for el in composition.elements.values() if el.name.startswith(element)))


def sweep_config(name: str):
    """The resolved config of a sweep without a search (its base with its ``set:`` overrides)."""
    sweep = load_sweep(RUNS / "sweeps" / f"{name}.yaml")
    return load_config(sweep.base, list(sweep.set))


def summary(name: str) -> pd.DataFrame:
    return pd.read_csv(RUNS / "sweeps" / "out" / name / "summary.csv")


def accuracy(row) -> tuple[str, str, list[str]]:
    """Test accuracy of a summary row as the docs write it: mean and sd in percent, per seed."""
    seeds = [f"{100 * float(v):.2f}" for v in row["test per seed"].split(" / ")]
    return f"{100 * row['test mean']:.2f}", f"{100 * row['test sd']:.2f}", seeds


def table_rows(text: str, heading: str) -> list[list[str]]:
    """Body rows of the first Markdown table under ``## heading``, as lists of stripped cells."""
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    table = re.search(r"^\|.*?(?=\n[^|]|\Z)", section, re.S | re.M).group(0)
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def headings(text: str) -> list[str]:
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_every_make_target_named_exists(doc):
    named = {m for block in code(doc.read_text()) for m in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", block)}
    assert named - makefile_targets() == set(), f"{rel(doc)} names make targets the Makefile lacks"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_every_biograd_command_and_option_named_exists(doc):
    commands = typer.main.get_command(app).commands
    for block in code(doc.read_text()):
        for line in block.splitlines():
            for command, rest in re.findall(r"(?<![\w./-])biograd ([a-z][\w-]*)(.*)", line):
                assert command in commands, f"{rel(doc)}: `biograd {command}` is not a command ({', '.join(commands)})"
                options = {o for p in commands[command].params for o in (*p.opts, *p.secondary_opts)}
                shown = set(re.findall(r"(?<!\S)--[a-z][\w-]*", rest.split(" #")[0]))
                assert shown <= options, f"{rel(doc)}: `biograd {command}` has no option {shown - options}"


def test_cli_help_lists_every_command():
    listed = re.search(r"``biograd ([\w |-]+)``", biograd.cli.__doc__).group(1).split(" | ")
    assert sorted(listed) == sorted(typer.main.get_command(app).commands)


def test_config_docstring_example_is_accepted(tmp_path):
    example = textwrap.dedent(biograd.config.__doc__.split("::", 1)[1].strip("\n"))
    (tmp_path / "example.yaml").write_text(example)
    cfg = load_config(tmp_path / "example.yaml")
    assert set(yaml.safe_load(example)) == {"name", "model", "data", "train", "record"}
    assert cfg.model.sizes == (784, 500, 10)


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_every_repo_path_named_exists(doc):
    text = doc.read_text()
    missing = []
    for item in {c.strip() for c in code(text)} | set(re.findall(r"\]\(([^)\s#]+)", text)):
        if not PATHLIKE.fullmatch(item) or item.startswith(("../shared", "runs/out/")) or item in RUN_FILES:
            continue
        first = item.removeprefix("../").split("/")[0]
        if "/" in item:
            bases = [ROOT, doc.parent]
            if first not in REPO_DIRS and not (doc.parent / first).is_dir() and not item.startswith("../"):
                continue  # a folder of a run directory or an export (recording/, loihi1/)
        elif item.endswith((".eqs", ".yaml", ".py", ".md", ".sh")):
            bases = [doc.parent, EQUATIONS, RUNS, RUNS / "configs", RUNS / "sweeps", ROOT / "scripts"]
        else:
            continue
        if not any((base / item).exists() for base in bases):
            missing.append(item)
    assert missing == [], f"{rel(doc)} names files that do not exist"


def test_runs_readme_names_every_config_sweep_and_script():
    """The Configs table names every config; the Sweeps and Scripts lists give each file a line of its own."""
    text = (RUNS / "README.md").read_text()
    for heading, files, entry in (("Configs", (RUNS / "configs").glob("*.yaml"), "`configs/{}`"),
                                  ("Sweeps", (RUNS / "sweeps").glob("*.yaml"), "\n- `{}`:"),
                                  ("Scripts", RUNS.glob("*.py"), "\n- `{}`:")):
        section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
        assert [p.name for p in sorted(files) if entry.format(p.name) not in section] == [], heading


def full_history() -> bool:
    """A git checkout with its whole history (not an archive, not a shallow clone)."""
    shallow = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--is-shallow-repository"], capture_output=True,
                             text=True)
    return shallow.returncode == 0 and shallow.stdout.strip() == "false"


def test_results_sections_cited_exist():
    """Every citation `RESULTS.md[ at commit C], "Heading"[ and "Heading"]` names a heading of that file (at C)."""
    sources = [*DOCS, *sorted(EQUATIONS.glob("*.yaml")), *sorted(RUNS.glob("*/*.yaml")),
               *sorted(ROOT.glob("scripts/*.sh")), *sorted(ROOT.glob("models/**/*.py"))]
    cited = 0
    for path in sources:
        text = " ".join(path.read_text().split())
        for start in re.finditer(r"RESULTS\.md(?: at commit \w+)?,", text):
            m = CITATION.match(text, start.start())
            assert m, f"{rel(path)}: cite as RESULTS.md[ at commit C], \"Heading\": {text[start.start():][:80]}"
            commit, *names = m.groups()
            if commit:
                shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:runs/RESULTS.md"],
                                       capture_output=True, text=True)
                if shown.returncode and not full_history():
                    continue  # an archive or a shallow clone: the cited commit cannot be read here
                assert shown.returncode == 0, f"{rel(path)}: commit {commit}: {shown.stderr.strip()}"
                results = shown.stdout
            else:
                results = (RUNS / "RESULTS.md").read_text()
            for name in filter(None, names):
                assert any(h == name or h.startswith(f"{name} (") for h in headings(results)), \
                    f"{rel(path)}: RESULTS.md{f' at {commit}' if commit else ''} has no section {name!r}"
                cited += 1
    assert cited >= 5


def test_genn_build_time_is_stated_once():
    texts = [ROOT / "Makefile", ROOT / "scripts" / "make_genn.sh", *DOCS]
    stated = set()
    for text in (path.read_text() for path in texts):
        stated |= {m.group(1) for m in re.finditer(r"about (\d+) min", text)
                   if "genn" in text[max(0, m.start() - 200):m.start()].lower()}
    assert len(stated) == 1, f"make genn takes 'about {' / '.join(sorted(stated))} min' in different places"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_table_values_quoted_equal_the_tables(doc):
    """`name` (value), `name` = value, `name` value: a parameter's value as its table holds it."""
    tables = table_values()
    text = doc.read_text()
    quotes = re.findall(r"`(\w+)`(?:\s*=\s*|\s*\(|\s+)(-?\d[\d.]*(?:e-?\d+)?(?:\s*(?:ms|s|Hz|kHz)\b)?)(?![\d.])", text)
    quotes = [(name, value) for name, value in quotes if name in tables]
    wrong = [(name, value) for name, value in quotes if not any(same(value, v) for v in tables[name])
             and (name, float(parse_quantity(value))) not in ALTERNATIVES]
    assert wrong == [], f"{rel(doc)} quotes values its tables do not hold"


def test_model_doc_quotes_the_tables_and_configs():
    text = " ".join((ROOT / "docs" / "model.md").read_text().split())
    tables = {name: values[0] for name, values in table_values().items()}
    gains = re.search(r"gains (\d+) \(output\) and (\d+) \(hidden\)", text).groups()
    assert [float(g) for g in gains] == [float(tables["gain_output"]), float(tables["gain_hidden"])]
    assert [float(n) for n in re.search(r"\$n_f = (\d+)\$ and \$n_e = (\d+)\$", text).groups()] == \
        [float(tables["n_f"]), float(tables["n_e"])]
    assert float(re.search(r"\$\\eta\$ = ([\d.]+) \|", text).group(1)) == float(tables["eta"])
    sets = re.findall(r"`(\w+)` sets `([\w.]+): ([^`]+)`", text)
    assert sets
    for name, key, value in sets:
        assert same(value, composed(config(name), key.removeprefix("model.params."))), f"{name}: {key}"


def test_network_yaml_holds_what_the_docs_say():
    """The README's and docs' list of what network.yaml holds names only its parameters (the teacher level is
    teacher.yaml's)."""
    held = set(yaml.safe_load((EQUATIONS / "network.yaml").read_text())["parameters"])
    words = {"teacher level": {"y_high"}, "error gains": {"gain_output", "gain_hidden"}, "dt": {"dt"},
             "initial weight scale": {"init_scale"}, "phase lengths": {"n_f", "n_e"},
             "slot codes": {"slot_infer", "slot_train", "slot_sleep"}}
    for doc in (ROOT / "README.md", ROOT / "docs" / "model.md"):
        text = " ".join(doc.read_text().split())
        clause = re.search(r"network\.yaml\W.{0,120}?\bholds\b(.*?)(?:\)|\. )", text).group(1)
        named = [word for word in words if re.search(rf"\b{word}\b", clause)]
        assert named, f"{rel(doc)}: {clause!r}"
        assert [word for word in named if not words[word] <= held] == [], f"{rel(doc)}: {clause!r}"


def test_sizes_quoted_with_a_config_equal_the_config():
    """`configs/X.yaml` ... A-B-C (same line), and A-B-C (`X`): the config's sizes (and the feedback mode after)."""
    checked = 0
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            quotes = re.findall(r"configs/(\w+)\.yaml\D*?(\d+(?:-\d+){2,})(?:, (\w+))?", line)
            quotes += [(name, sizes, "") for sizes, name in re.findall(r"(\d+(?:-\d+){2,}) \(`(\w+)`\)", line)]
            for name, sizes, mode in quotes:
                cfg = config(name)
                assert "-".join(map(str, cfg.model.sizes)) == sizes, f"{rel(doc)}: {line}"
                assert mode not in MODES or cfg.model.feedback == mode, f"{rel(doc)}: {line}"
                checked += 1
    assert checked >= 7


def test_runs_readme_splits_equal_the_configs():
    for name, _, data, _ in table_rows((RUNS / "README.md").read_text(), "Configs"):
        validation = re.search(r"[\d,.]+k? (?:train )?/ ([\d,]+k?) (?:validation )?/", data).group(1)
        expected = config(re.search(r"configs/(\w+)\.yaml", name).group(1)).data.validation
        assert int(validation.replace(",", "").replace("k", "000")) == expected, name


def test_results_mnist_table_equals_configs_and_sweep_tables():
    """Each row: its setting is the final sweep's config and the selection's best.json (with its validation
    accuracy); its test accuracy, sd and per-seed values are the final sweep's summary.csv."""
    rows = table_rows((RUNS / "RESULTS.md").read_text(), "MNIST")
    assert len(rows) == 6
    for _, _, setting, test, seeds, command in rows:
        final = re.search(r"(\w+_final)\.yaml", command).group(1)
        values = dict(re.findall(r"(\w+) ([\d.e-]+)(?:,| \()", setting))
        assert set(values) <= set(SETTING) and "eta" in values, setting
        cfg = sweep_config(final)
        best = json.loads((RUNS / "sweeps" / "out" / final.removesuffix("_final") / "best.json").read_text())
        for word, value in values.items():
            assert same(value, composed(cfg, SETTING[word])), f"{final}: {word}"
            assert same(value, best["values"][f"model.params.{SETTING[word]}"]), f"best.json: {word}"
        assert re.search(r"\(([\d.]+)%\)", setting).group(1) == f"{100 * best['validation mean']:.2f}"
        mean, sd, per_seed = accuracy(summary(final).iloc[0])
        assert test == f"**{mean} ± {sd}%**" and seeds == ", ".join(per_seed), final


def test_readme_results_equal_the_sweep_tables():
    readme = (ROOT / "README.md").read_text()
    rows = table_rows(readme, "Results")
    assert len(rows) == 2
    for network, *cells in rows:
        name = re.search(r"`(\w+)`", network).group(1)
        for mode, cell in zip(MODES, cells, strict=True):
            mean, sd, _ = accuracy(summary(f"{name}_{mode}_final").iloc[0])
            assert cell.startswith(f"{mean} ± {sd}%"), f"{name}, {mode}: {cell}"
    loihi = summary("mnist_1h_loihi_ablation").set_index("model.precision").loc["loihi"]
    assert "reaches {} ± {}%".format(*accuracy(loihi)[:2]) in " ".join(readme.split())


def test_results_loihi_table_equals_the_ablation():
    text = (RUNS / "RESULTS.md").read_text()
    ablation = summary("mnist_1h_loihi_ablation").set_index("model.precision")
    rows = table_rows(text, "Loihi precision")
    assert len(rows) == len(ablation)
    for precision, test, seeds, *_ in rows:
        mean, sd, per_seed = accuracy(ablation.loc[precision.split()[0].strip("`")])
        assert (test, seeds) == (f"**{mean} ± {sd}%**", ", ".join(per_seed)), precision
    sweep, setting, validation = re.search(r"`runs/sweeps/(\w+)\.yaml`:\s*(.*?), ([\d.]+)%\)", text).groups()
    values = dict(re.findall(r"(\w+) ([\d.e-]+)", setting))
    best = json.loads((RUNS / "sweeps" / "out" / sweep / "best.json").read_text())
    cfg = config("mnist_1h_loihi")
    assert values and all(same(v, composed(cfg, SETTING[k])) for k, v in values.items())
    assert all(same(v, best["values"][f"model.params.{SETTING[k]}"]) for k, v in values.items())
    assert validation == f"{100 * best['validation mean']:.2f}"


def test_results_hold_results_not_status():
    """RESULTS.md and the report's text state results and commands; which machines were lent is history."""
    for name, text in (("runs/RESULTS.md", (RUNS / "RESULTS.md").read_text()), ("report.md", ENERGY_DISCUSSION)):
        assert not re.search(r"\blent\b|\bnot measured\b", " ".join(text.split()), re.I), name
