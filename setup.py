"""The package list, derived from the folders (everything else is in pyproject.toml).

The design card's top-level folders install as sub-packages of ``biograd``, never as top-level
``models`` etc.: ``models/`` -> ``biograd.models``, ``analysis/`` -> ``biograd.analysis``,
``equations/`` -> ``biograd.equations``, ``runs/configs/`` -> ``biograd.configs`` (the run configs). Every
folder below them is a package too (data folders such as ``models/templates`` included), except caches and
the notebooks, which are jupytext sources to open in JupyterLab, not modules.
"""

from setuptools import find_namespace_packages, setup

FOLDERS = {"biograd": "biograd", "biograd.models": "models", "biograd.analysis": "analysis",
           "biograd.equations": "equations", "biograd.configs": "runs/configs"}
NOT_PACKAGES = ["__pycache__", "*.__pycache__", "notebooks", "notebooks.*"]

packages = [f"{package}.{below}" for package, folder in FOLDERS.items()
            for below in ["", *find_namespace_packages(where=folder, exclude=NOT_PACKAGES)]]
setup(packages=[name.rstrip(".") for name in packages], package_dir=FOLDERS)
