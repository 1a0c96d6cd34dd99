"""The project as a user installs it: one name per module, and the wheel and the sdist, each installed into a
fresh virtual environment, run the commands of the README there (check, describe, demo, report).

The fresh environments see the development environment's packages through a ``.pth`` line (so the test needs
no network and no dependency downloads) and pip installs the project from its built file with ``--no-index``:
the project's dependency list must then be satisfied by what ``pyproject.toml`` installs.
"""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("models", "analysis", "equations")  # the design card's top-level folders: biograd.<folder>
TEMPLATE_CHECK = ("from biograd.models.dense_pathways import DensePathwayCodeObject as D; env = D.templater.env;"
                  "assert 'the dense pathway template' in env.loader.get_source(env, 'synapses.cpp')[0]")
DEMO = ["data.n_train=30", "data.n_test=20", "data.validation=10", "train.epochs=1", "train.warmup_sleep_blocks=1",
        "train.chunk=30", "train.eval_chunk=20", "record.probe_samples=1", "model.sizes=[784,12,10]"]


def test_nothing_depends_on_symbolic_links():
    """No committed file is a link (git mode 120000): a checkout without them (Git for Windows) is complete."""
    tracked = subprocess.run(["git", "ls-files", "--stage"], cwd=ROOT, capture_output=True, text=True, check=True)
    links = [line.split("\t")[-1] for line in tracked.stdout.splitlines() if line.startswith("120000")]
    assert not links, f"symbolic links in the repository: {links}"
    assert not [path for path in (ROOT / "biograd").rglob("*") if path.is_symlink()]


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_top_level_folder_is_importable_only_as_part_of_biograd(folder):
    """From the repository root (on sys.path), ``import models`` would make a second module tree beside
    ``biograd.models``: it is refused with a message naming the right import."""
    out = subprocess.run([sys.executable, "-c", f"import {folder}"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0
    assert f"import biograd.{folder}" in out.stderr.splitlines()[-1]
    imported = subprocess.run([sys.executable, "-c", f"import biograd.{folder} as m; print(m.__file__)"], cwd=ROOT,
                              capture_output=True, text=True, check=True)
    assert Path(imported.stdout.strip()) == ROOT / folder / "__init__.py"


def fresh_venv(path: Path) -> Path:
    """A new virtual environment that sees this environment's installed packages (not the project itself,
    which is installed editable here through a .pth file that a .pth line does not run); its python."""
    venv.create(path, with_pip=False)
    python = path / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    here = Path(sysconfig.get_paths()["purelib"])
    Path(purelib, "dev_environment.pth").write_text(f"{here}\n")
    for hook in here.glob("*.pth"):  # setuptools' distutils shim (brian2 imports distutils), not the project
        if not hook.name.startswith("__editable__.biograd"):
            shutil.copy2(hook, purelib)
    return python


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The wheel and the sdist, built from a copy of the files git tracks or would track (no build outputs)."""
    out = tmp_path_factory.mktemp("dist")
    source = out / "source"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():  # (a deleted file is still listed until it is committed)
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source], check=True,
                   capture_output=True)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_the_installed_package_runs_the_readme_commands(built, tmp_path, kind):
    """pip installs the wheel (or builds and installs the sdist) into a fresh environment; there, away from the
    checkout, the package finds its equation files, configs, templates and data tables."""
    artefact = next(built.glob("biograd-*.whl" if kind == "wheel" else "biograd-*.tar.gz"))
    python = fresh_venv(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index",
                    "--no-build-isolation", artefact], check=True)
    work = tmp_path / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    biograd = [tmp_path / "venv" / "bin" / "biograd"]

    def run(*args: str) -> str:
        out = subprocess.run([*biograd, *args], cwd=work, env=env, capture_output=True, text=True)
        assert out.returncode == 0, f"biograd {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out.stdout

    where = subprocess.run([python, "-c", f"{TEMPLATE_CHECK}; import biograd; print(biograd.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr[-2000:]
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv")
    assert re.search(r"\b(\d+) of \1 model files pass", run("check"))
    assert "method=" in run("describe", "--sizes", "6-4-3")
    backend = "cpp_standalone" if kind == "wheel" else "numpy"  # the compiled path once, the debugging one once
    demo = run("demo", *(arg for item in [*DEMO, f"train.backend={backend}"] for arg in ("--set", item)))
    assert "test accuracy" in demo
    (run_dir,) = (work / "runs" / "out").glob("*_demo_*")
    report = run("report", "--force", str(run_dir))  # the demo wrote one; README: again with --force
    assert (run_dir / "report" / "report.md").is_file(), report
    assert "energy" in (run_dir / "report" / "report.md").read_text().lower()
