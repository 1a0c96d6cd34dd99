"""record.spikes: spike trains of the probe build as NWB (read back with pynwb), Neo segments, Elephant's
statistics against the cited reference ranges, the report's section and the notebook."""

import json
from pathlib import Path
from types import SimpleNamespace

import brian2 as b2
import numpy as np
import pandas as pd
import pytest
from support import executed_notebook_cells

from biograd.analysis.spike_statistics import load_references, reference_checks, spike_statistics
from biograd.analysis.spike_trains import SpikeRecording, neo_segments, read_nwb
from biograd.chunks import targets_for
from biograd.config import RecordConfig, dump_config, load_config
from biograd.data.splits import chunk_stimulus
from biograd.models.elements import equations_dir
from biograd.models.network import BioGradNetwork
from biograd.plan import PROBE, task_seed
from biograd.recording import Prober
from biograd.report import spike_section
from biograd.spikes import SPIKE_RUNS

pynwb = pytest.importorskip("pynwb")

CONFIG = """\
name: tiny_spikes
model: {sizes: [64, 12, 10], feedback: sleep}
data: {source: sklearn, n_train: 10, n_test: 10}
train: {epochs: 1, sleep_every: 10, chunk: 10, sleep_duration: 40 ms, backend: numpy, seed: 3}
record: {probe_samples: 1, spikes: {samples: 2, repeats: 2, neurons: 8}}
"""


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """One probe point of a 64-12-10 network at its initial weights, recording spikes into a folder."""
    folder = tmp_path_factory.mktemp("spikes")
    (folder / "run.yaml").write_text(CONFIG)
    (folder / "versions.json").write_text(json.dumps({"packages": {"brian2": "2.10.1"}}))
    config = load_config(folder / "run.yaml")
    backend = config.train.backend_in(folder)  # numpy (this module fixture comes before conftest's)
    backend.activate()
    prober = Prober(config, equations_dir(), folder, backend=backend)
    state = prober.net.initial_state
    prober.rows(state, {"epoch": 0, "chunk": None, "samples": 0, "split": "probe", "layer": None}, "task00000")
    return SimpleNamespace(folder=folder, config=config, prober=prober, state=state, path=folder / "spikes.nwb")


def test_nwb_file_holds_the_monitors_spike_times(probed):
    """pynwb reads back exactly the times the EventMonitors recorded: the last run (the sleep block) as the
    monitors still hold it, and the first sample's first run, run again with its seed; the phases are epochs."""
    prober, composition = probed.prober, probed.prober.net.composition
    net, dt = prober.net, float(composition.dt / b2.second)
    slot, runs = net.n_slot * dt, 2 * 2  # samples x repeats, then the sleep block
    with pynwb.NWBHDF5IO(str(probed.path), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        epochs = nwb.epochs.to_dataframe()
        assert dump_config(probed.config) in nwb.notes and '"brian2": "2.10.1"' in nwb.source_script
    assert sorted(set(zip(units.layer, units.kind, strict=True))) == [
        (layer, kind) for layer in (1, 2) for kind in ("err_neg", "err_pos", "spike")]
    assert len(units) == 2 * 3 * 8
    assert all(list(n) == list(range(8)) for _, n in units.groupby(["layer", "kind"]).neuron)

    def in_file(offset: float) -> dict:
        """(layer, kind) -> sorted (neuron, time) of the file in the run that starts at ``offset``."""
        found = {}
        for row in units.itertuples():
            times = np.asarray(row.spike_times)
            found.setdefault((row.layer, row.kind), []).extend(
                (row.neuron, t) for t in times[(times >= offset) & (times < offset + slot)])
        return {key: sorted(value) for key, value in found.items()}

    def in_monitors(offset: float) -> dict:
        return {key: sorted((int(i), offset + t) for i, t in zip(*value, strict=True))
                for key, value in net.spike_times().items()}

    assert in_monitors(runs * slot) == in_file(runs * slot)  # exact: the same float64 sums
    assert sum(map(len, in_file(runs * slot).values())) > 0  # the sleep block spiked
    index = prober.spike_indices[0]
    net.run_chunk(np.array([composition.slot_train]), chunk_stimulus(prober.split, np.array([index]), net.n_slot),
                  targets_for(prober.split.labels[[index]], 10), probed.state,
                  seed=task_seed(task_seed(3, PROBE, 0), SPIKE_RUNS, 0))
    first = in_monitors(0.0)
    assert first == in_file(0.0) and first[1, "spike"] and first[1, "err_pos"] + first[1, "err_neg"]
    assert epochs.phase.value_counts().to_dict() == {"error": 2 * runs, "forward": runs, "sleep": 2}
    forward, error = epochs[epochs.phase == "forward"], epochs[epochs.phase == "error"]
    assert np.allclose(forward.start_time, np.arange(runs) * slot)
    assert np.allclose(forward.stop_time - forward.start_time, composition.n_f * dt)
    assert list(forward["sample"]) == [prober.spike_indices[k // 2] for k in range(runs)]
    assert list(forward["repeat"]) == [0, 1, 0, 1]
    for layer, after in ((2, composition.n_f), (1, composition.n_f + composition.n_e)):  # the output's window first
        assert np.allclose(error[error.layer == layer].start_time.to_numpy() - forward.start_time.to_numpy(),
                           after * dt)
    assert sorted(epochs[epochs.phase == "sleep"].role) == ["sleep noise", "sleep response"]


def test_default_config_records_no_spikes(tmp_path):
    """Off by default: no key in the dumped config (hashes unchanged), no EventMonitor in the build, and spikes
    without probe points is refused."""
    (tmp_path / "run.yaml").write_text(CONFIG.replace(", spikes: {samples: 2, repeats: 2, neurons: 8}", ""))
    config = load_config(tmp_path / "run.yaml")
    assert config.record.spikes is None and "spikes:" not in dump_config(config)
    net = BioGradNetwork(config.model, slots=1)
    assert net.spike_monitors == {} and not [o for o in net.network.objects if isinstance(o, b2.EventMonitor)]
    with pytest.raises(ValueError, match="set record.probe_samples >= 1"):
        RecordConfig(spikes={})


def _recording(trains: dict[tuple[int, str, int], list[float]], intervals: list[tuple]) -> SpikeRecording:
    """A hand-made recording: (layer, kind, neuron) -> times; intervals (start, stop, phase, layer, sample, repeat)."""
    units = pd.DataFrame([(k, layer, neuron, kind) for k, (layer, kind, neuron) in enumerate(trains)],
                         columns=["unit", "layer", "neuron", "kind"])
    spikes = pd.DataFrame([(k, t) for k, times in enumerate(trains.values()) for t in times],
                          columns=["unit", "time_s"])
    frame = pd.DataFrame([(*i, "") for i in intervals],
                         columns=["start_s", "stop_s", "phase", "layer", "sample", "repeat", "role"])
    return SpikeRecording(units, spikes.astype({"unit": np.int64, "time_s": float}), frame)


def test_statistics_equal_a_direct_computation():
    """Regular trains: CV 0 and LV 0; rates, Fano factors, count correlations and the error events' balance as
    computed by hand."""
    regular = list(np.arange(0.0, 1.0, 0.1))  # 10 Hz, a clock
    irregular = [0.05, 0.1, 0.3, 0.35, 0.8]
    second = [t + 1.0 for t in [0.02, 0.2, 0.5]]  # the second trial of each neuron
    recording = _recording(
        {(1, "spike", 0): regular + [t + 1.0 for t in regular],
         (1, "spike", 1): irregular + second,
         (1, "spike", 2): [],
         (1, "err_pos", 0): [2.01, 2.02, 2.03], (1, "err_neg", 0): [2.04],
         (1, "err_pos", 1): [], (1, "err_neg", 1): [2.05, 2.06]},
        [(0.0, 1.0, "forward", -1, 7, 0), (1.0, 2.0, "forward", -1, 7, 1), (2.0, 2.1, "error", 1, 7, 0)])
    stats = spike_statistics(neo_segments(recording)).set_index(["measure", "layer", "phase"]).value
    assert stats["rate_hz", 1, "forward"] == pytest.approx(np.mean([10.0, (5 + 3) / 2, 0.0]))
    assert stats["rate_median_hz", 1, "forward"] == pytest.approx(4.0)
    isis = np.concatenate([np.diff(irregular), np.diff(second)])
    assert stats["isi_cv", 1, "forward"] == pytest.approx(np.median([0.0, np.std(isis) / np.mean(isis)]), abs=1e-12)
    i = np.diff(irregular)
    lv_irregular = 3 * np.mean(((i[:-1] - i[1:]) / (i[:-1] + i[1:])) ** 2)
    j = np.diff(second)
    lv_second = 3 * np.mean(((j[:-1] - j[1:]) / (j[:-1] + j[1:])) ** 2)
    lv1 = (lv_irregular * 3 + lv_second * 1) / 4  # per trial, weighted by pairs of ISIs
    assert stats["lv", 1, "forward"] == pytest.approx(np.median([0.0, lv1]), abs=1e-12)
    # Fano factor over the two repeats of sample 7 (unbiased variance): neuron 0 counts (10, 10) -> 0, neuron 1
    # (5, 3) -> var/mean; neuron 2 never spikes (left out)
    assert stats["fano_factor", 1, "forward"] == pytest.approx(np.mean([0.0, np.var([5, 3], ddof=1) / 4]))
    # two trials give counts (10, 10) (no variance: left out) and (5, 3): no pair with two varying neurons
    assert np.isnan(stats["count_correlation", 1, "forward"])
    assert stats["error_rate_hz", 1, "error"] == pytest.approx(np.mean([4 / 0.1, 2 / 0.1]))
    assert stats["error_sign_balance", 1, "error"] == pytest.approx((3 - 3) / 6)
    assert ("rate_hz", 1, "error") not in stats and ("error_rate_hz", 1, "forward") not in stats


def test_count_correlation_of_counts_per_trial():
    """Three trials with counts (1, 2, 3) and (2, 4, 6) correlate at 1, (3, 2, 1) at -1: mean of the pairs 1/3."""
    trials = [(float(k), float(k + 1), "forward", -1, k, 0) for k in range(3)]

    def times(counts):
        return [k + 0.1 * (s + 1) for k, c in enumerate(counts) for s in range(c)]
    recording = _recording({(2, "spike", 0): times([1, 2, 3]), (2, "spike", 1): times([2, 4, 6]),
                            (2, "spike", 2): times([3, 2, 1])}, trials)
    stats = spike_statistics(neo_segments(recording)).set_index(["measure", "layer", "phase"])
    assert stats.value["count_correlation", 2, "forward"] == pytest.approx((1 - 1 - 1) / 3)
    assert stats.n["count_correlation", 2, "forward"] == 3
    assert np.isnan(stats.value["fano_factor", 2, "forward"])  # every sample shown once: no repeats


def test_reference_file_and_checks():
    """Every range has a citation with authors, year and journal; meets is yes inside the range, no outside, n/a
    without a range, for a phase the range is not for, or without a value."""
    references = load_references()
    assert {"rate_hz", "isi_cv", "lv", "fano_factor", "count_correlation"} <= {
        name for name, ref in references.items() if ref.low is not None and ref.citations}
    for ref in references.values():
        for citation in ref.citations:
            assert citation.short.split()[-1].isdigit() and citation.short.split()[-1] in citation.full
    cv = references["isi_cv"]
    stats = pd.DataFrame([("isi_cv", 1, "forward", (cv.low + cv.high) / 2, "1", 5),
                          ("isi_cv", 1, "sleep", cv.high + 1, "1", 5), ("isi_cv", 2, "forward", np.nan, "1", 0),
                          ("isi_cv", 1, "error", 1.0, "1", 5), ("error_rate_hz", 1, "error", 3.0, "Hz", 5)],
                         columns=["measure", "layer", "phase", "value", "unit", "n"])
    checks = reference_checks(stats, references)
    assert list(checks.meets) == ["yes", "no", "n/a", "n/a", "n/a"]
    assert checks.citation[0] == "; ".join(c.short for c in cv.citations) and checks.reference[4] == "none"


def test_report_section_sets_each_measure_against_its_citation(probed):
    lines = "\n".join(spike_section(SimpleNamespace(path=probed.folder, label="tiny")))
    references = load_references()
    assert "### Spike statistics (Elephant): tiny" in lines
    checks = reference_checks(spike_statistics(neo_segments(read_nwb(probed.path))), references)
    assert set(checks.measure) == set(references) and set(checks.layer) == {1, 2}
    assert set(checks.phase) == {"forward", "error", "sleep"}
    for row in checks[checks.meets != "n/a"].itertuples():
        assert f"| {row.measure} " in lines and row.citation in lines
        for citation in references[row.measure].citations:
            assert f"- {citation.short}: {citation.full}" in lines
    assert spike_section(SimpleNamespace(path=probed.folder / "nothing", label="x")) == []


@pytest.mark.slow
def test_spike_notebook_executes(probed, tmp_path):
    """The notebook reads the NWB file of BIOGRAD_RUNS' first run with one, and every code cell shows something."""
    notebook = Path(__file__).parents[1] / "analysis" / "notebooks" / "spike_statistics.py"
    cells = executed_notebook_cells(notebook, [tmp_path, probed.folder], tmp_path)
    table = cells[-2].outputs[-1].data["text/plain"]
    assert "isi_cv" in table and "Softky & Koch 1993" in table


@pytest.mark.slow
def test_training_with_spikes_writes_nwb_and_trains_as_without(tmp_path):
    """A run with record.spikes ends with spikes.nwb (the last probe point's) and `biograd report` shows its
    section; its weights and probes equal those of the same run without spikes."""
    from typer.testing import CliRunner

    from biograd.cli import app
    from biograd.launch import start_run
    from biograd.trainer import Trainer

    runs = []
    for name, text in (("with", CONFIG), ("without", CONFIG.replace(", spikes: {samples: 2, repeats: 2, neurons: 8}",
                                                                    ""))):
        (tmp_path / f"{name}.yaml").write_text(text)
        run = start_run(load_config(tmp_path / f"{name}.yaml"), root=tmp_path / name)
        Trainer(run, progress=False).train()
        runs.append(run)
    spiking, plain = runs
    assert (spiking.path / "spikes.nwb").is_file() and not (plain.path / "spikes.nwb").exists()
    recording = read_nwb(spiking.path / "spikes.nwb")
    assert recording.metadata["identifier"].startswith(f"{spiking.path.name}/task")
    assert len(recording.spikes) > 0 and set(recording.intervals.phase) == {"forward", "error", "sleep"}
    a, b = spiking.load_checkpoint()[0].named(), plain.load_checkpoint()[0].named()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert len(spiking.table("alignment")) and spiking.table("alignment").equals(plain.table("alignment"))
    result = CliRunner().invoke(app, ["report", str(spiking.path)])
    assert result.exit_code == 0, result.output
    text = (spiking.path / "report" / "report.md").read_text()
    assert "### Spike statistics (Elephant)" in text and "Softky & Koch 1993" in text
    assert "### Spike statistics" not in CliRunner().invoke(app, ["report", str(plain.path)]).output and \
        "### Spike statistics" not in (plain.path / "report" / "report.md").read_text()
