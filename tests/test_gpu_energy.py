"""runs/gpu_energy.py: a benchmark's training windows priced with a power log, as scripts/gpu_check.sh runs it."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).parents[1] / "runs" / "gpu_energy.py"


def test_energy_per_sample_from_a_power_log(tmp_path):
    speed = pd.DataFrame({"sizes": ["784-500-10"] * 3, "backend": ["cuda_standalone"] * 3, "replicas": [1, 64, 256],
                          "train_samples": [1000, 6400, None], "train_samples_per_s": [100.0, 3200.0, None],
                          "train_start_unix": [1000.0, 1020.0, None], "train_end_unix": [1010.0, 1022.0, None]})
    speed.to_csv(tmp_path / "speed.csv", index=False)
    lines = [f"{995 + 0.2 * i:.1f},{'[N/A]' if i == 7 else 250.0}" for i in range(175)]  # 995-1029.8 s, 250 W
    (tmp_path / "power.csv").write_text("\n".join(lines) + "\n")
    subprocess.run([sys.executable, SCRIPT, tmp_path / "speed.csv", tmp_path / "power.csv", "--loihi-uj", "25"],
                   check=True, capture_output=True, text=True)
    table = pd.read_csv(tmp_path / "gpu_energy.csv").set_index("replicas")
    assert list(table.index) == [1, 64], "the row without a training window is left out"
    assert table.mean_watts.tolist() == pytest.approx([250.0, 250.0])
    assert table.mJ_per_sample.tolist() == pytest.approx([250 * 10 / 1000 * 1e3, 250 * 2 / 6400 * 1e3])
    assert table.vs_loihi_estimate[1] == pytest.approx(2.5 / 25e-6)


def test_a_log_that_misses_every_window_is_refused(tmp_path):
    pd.DataFrame({"sizes": ["784-500-10"], "backend": ["genn_cuda"], "replicas": [1], "train_samples": [10],
                  "train_samples_per_s": [1.0], "train_start_unix": [5000.0], "train_end_unix": [5010.0]}
                 ).to_csv(tmp_path / "speed.csv", index=False)
    (tmp_path / "power.csv").write_text("1.0,100\n2.0,100\n")
    done = subprocess.run([sys.executable, SCRIPT, tmp_path / "speed.csv", tmp_path / "power.csv", "--loihi-uj", "25"],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "covers none of the training windows" in done.stderr
