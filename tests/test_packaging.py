"""The project installed as a wheel (not editable) finds its equation files and synapse templates: the
model's folders are sub-packages of ``biograd`` there (``pyproject.toml``), not folders beside it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ["pyproject.toml", "README.md", "biograd", "models", "analysis", "equations"]


@pytest.mark.slow
def test_installed_wheel_loads_the_model(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in PACKAGED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "wheel", source], check=True)
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", tmp_path / "site",
                    *(tmp_path / "wheel").glob("biograd-*.whl")], check=True)
    check = ("import brian2; brian2.prefs.codegen.target = 'numpy';"
             "import biograd.models.elements as e; from biograd.models.spec import NetworkSpec;"
             "from biograd.models.network import BioGradNetwork;"
             "net = BioGradNetwork(NetworkSpec(sizes=(4, 3, 2)), slots=1, seed=0);"
             "from biograd.models.dense_pathways import DensePathwayCodeObject as D; env = D.templater.env;"
             "assert 'the dense pathway template' in env.loader.get_source(env, 'synapses.cpp')[0];"
             "print(e.EQUATIONS_DIR)")
    site = {"PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=os.environ | site,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert Path(out.stdout.strip().splitlines()[-1]) == tmp_path / "site" / "biograd" / "equations"
