"""Seeded demo runs repeat, bit for bit, the runs recorded before the renovation.

``data/golden_runs.json`` holds what ``biograd train runs/configs/demo.yaml --set ...`` wrote at the
commit named there (before the layers, the composition file and the runners existed): the sha256
of every final weight array and every metrics row. The same overrides today, with Brian2's own
templates as then, must give the same bytes and the same values. One tiny run belongs to
the fast tier; the rest (numpy and cpp_standalone, one and two hidden layers) to the standalone and
slow tiers.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biograd.config import load_config
from biograd.launch import start_run
from biograd.trainer import Trainer

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_runs.json").read_text())
DEMO = Path(__file__).parents[1] / GOLDEN["config"]
KEY = ["epoch", "chunk", "samples", "split", "metric", "layer"]
TIERS = {"tiny_numpy": [], "small_numpy": [pytest.mark.slow], "small2h_numpy": [pytest.mark.slow],
         "small_cpp": [pytest.mark.standalone], "small2h_cpp": [pytest.mark.standalone, pytest.mark.slow]}


def sorted_metrics(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame = frame[frame.metric != "samples_per_s"].astype({"value": float})
    return frame.sort_values(KEY).reset_index(drop=True)


@pytest.mark.parametrize("name", [pytest.param(name, marks=marks) for name, marks in TIERS.items()])
def test_demo_run_repeats_the_recorded_run(name, tmp_path):
    recorded = GOLDEN["runs"][name]
    then = ["data.validation=0",  # the recorded runs predate validation splits: their epochs were tested
            "train.templates=brian2"]  # and dense pathways (tests/test_dense_pathways.py: equal to rounding)
    run = start_run(load_config(DEMO, [*recorded["overrides"], *then]), root=tmp_path)
    Trainer(run, progress=False).train()
    with np.load(run.checkpoint_path) as checkpoint:
        arrays = {k: checkpoint[k] for k in checkpoint.files if k != "progress"}
    assert sorted(arrays) == sorted(recorded["arrays"])
    for key, values in arrays.items():
        digest = hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()
        assert digest == recorded["arrays"][key]["sha256"], \
            f"{key}: sum {values.sum()!r}, recorded {recorded['arrays'][key]['sum']!r}"
    now, then = sorted_metrics(run.metrics().to_dict("records")), sorted_metrics(recorded["metrics"])
    pd.testing.assert_frame_equal(now[KEY], then[KEY], check_dtype=False)
    np.testing.assert_array_equal(now.value.to_numpy(), then.value.to_numpy())
