"""runs/benchmark.py: the profile's shares per code-object kind and the cost per synaptic event."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location("benchmark", Path(__file__).parents[1] / "runs" / "benchmark.py")
benchmark = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(benchmark)


def test_code_objects_are_grouped_by_kind_and_events_counted_per_fan_out():
    info = [("forward1_pre_codeobject", 3.0), ("forward2_pre_codeobject", 1.0), ("forward1_pre_learn_codeobject", 1.0),
            ("feedback2_pre_sleep_spike_codeobject", 0.5), ("feedback2_pre_err_neg_codeobject", 0.5),
            ("forward1_pre_push_spikes", 0.25), ("layer1_stateupdater_codeobject", 1.0),
            ("layer1_spike_thresholder_codeobject", 1.0), ("layer1_err_pos_resetter_codeobject", 0.25),
            ("layer1_slots_codeobject", 1.0), ("layer1_slot_start_codeobject", 0.25), ("synapses_group_update", 0.25)]
    spikes = {0: np.full((2, 4), 5.0), 1: np.full((2, 3), 2.0), 2: np.ones((2, 2))}  # 40, 12 and 4 spikes
    shares = benchmark.code_object_shares(info, SimpleNamespace(spikes=spikes), (4, 3, 2))
    assert shares["profiled_s"] == pytest.approx(10.0)
    assert {kind: shares[f"share_{kind}"] * 10 for kind in benchmark.CODE_OBJECT_KINDS} == pytest.approx(
        {"propagation": 4.0, "learning": 1.0, "error_events": 0.5, "sleep_rule": 0.5, "relay": 0.0, "spike_queue": 0.25,
         "state_update": 1.0, "thresholds": 1.0, "resets": 0.25, "monitors": 1.0, "slot_start": 0.25, "other": 0.25})
    assert shares["ns_per_event"] == pytest.approx(4e9 / (40 * 3 + 12 * 2)), "the output layer's spikes reach nothing"


def test_perf_samples_are_grouped_by_kind_and_the_rest_is_outside(monkeypatch):
    """--perf: perf report's symbols of the binary, _run_<code object> by kind, everything else outside."""
    report = """# Samples: 1K of event 'cycles'
#
    40.00%  [.] _run_forward1_pre_codeobject
    20.00%  [.] _run_layer1_spike_thresholder_codeobject
    10.00%  [.] _run_layer1_slots_codeobject
    10.00%  [.] _run_forward1_pre_push_spikes
     8.00%  [.] _write_arrays
     7.00%  [k] clear_page_erms
     5.00%  [.] _run_layer1_stateupdater_codeobject
"""
    monkeypatch.setattr(benchmark.subprocess, "run", lambda *a, **k: SimpleNamespace(stdout=report))
    shares = benchmark.perf_shares(Path("perf.data"))
    assert shares == pytest.approx({f"perf_{kind}": 0.0 for kind in benchmark.CODE_OBJECT_KINDS} | {
        "perf_propagation": 0.4, "perf_thresholds": 0.2, "perf_monitors": 0.1, "perf_spike_queue": 0.1,
        "perf_state_update": 0.05, "perf_outside": 0.15})
