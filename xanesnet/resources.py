"""Where the shipped models are: the repository's ``models/`` in a checkout, package data in an installed wheel.

``$XANESNET_MODELS`` overrides both. A wheel (or ``pip install .``) carries
``models/`` as ``xanesnet/_models`` (see ``setup.py``), found through
:mod:`importlib.resources`, so predictions work from any directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def models_dir() -> Path:
    """The directory holding the shipped model directories (``fe-k-xanes``, ...)."""
    if os.environ.get("XANESNET_MODELS"):
        return Path(os.environ["XANESNET_MODELS"])
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "models").is_dir():  # a source checkout or editable install
        return root / "models"
    from importlib.resources import files

    return Path(str(files("xanesnet") / "_models"))
