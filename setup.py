"""Packaging beyond pyproject.toml: the repository's ``models/`` ships inside the package as ``xanesnet/_models``.

The shipped models live in ``models/`` at the top of the repository (where they
are trained and reviewed); a wheel or ``pip install .`` carries them as package
data, found at run time through ``importlib.resources`` (``xanesnet.resources``).
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["xanesnet*"]) + ["xanesnet._models"],
    package_dir={"xanesnet._models": "models"},
    package_data={"xanesnet._models": ["**/*.json", "**/*.pt"]},
)
