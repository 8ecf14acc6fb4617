"""Shared fixtures: the reference data in ../shared/data, tiny synthetic data sets, invariance checks."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("XANESNET_SHARED_DATA", ROOT.parent / "shared" / "data"))
EXAMPLES = ROOT / "data" / "examples"


def float16_jittered(members: list, gen) -> list:
    """Copies of ``members`` with every weight moved by a uniform random amount within half a float16 step: where
    the float32 originals of float16-stored weights may lie."""
    import torch

    nets = []
    for net in members:
        sd = {}
        for k, v in net.state_dict().items():
            step = torch.as_tensor(np.spacing(np.abs(v.numpy()).astype(np.float16)).astype(np.float32))
            sd[k] = v + (torch.rand(v.shape, generator=gen) - 0.5) * step
        nets.append(type(net).from_state(net.settings, sd, n_in=net.n_in, n_out=net.n_out))
    return nets


def shared_data(*parts: str) -> Path:
    """Path under the shared reference data; skip (or, under CI=true, fail) when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        reason = f"reference data not found at {path} (expected ../shared/data beside the repository)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + "; CI must have it")
        pytest.skip(reason)
    return path


def copy_fe_sample(root: Path, n: int) -> Path:
    """The first ``n`` molecules of the Fe sample, copied to ``root/xyz`` and ``root/xanes``; returns ``root``."""
    import shutil

    sample = shared_data("fe_k_fdmnes_sample")
    for sub in ("xyz", "xanes"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for p in sorted((sample / "xyz").glob("*.xyz"))[:n]:
        shutil.copy(p, root / "xyz" / p.name)
        shutil.copy(sample / "xanes" / f"{p.stem}.txt", root / "xanes" / f"{p.stem}.txt")
    return root


@pytest.fixture(scope="session")
def fe_sample() -> Path:
    """The 99-molecule Fe sample (xyz/ and xanes/), unpacked."""
    return shared_data("fe_k_fdmnes_sample")


@pytest.fixture(scope="session")
def fe_full(tmp_path_factory) -> Path:
    """The 4,079 Fe complexes with FDMNES spectra, extracted once per session."""
    archive = shared_data("fe_k_fdmnes_train.tar.gz")
    out = tmp_path_factory.mktemp("fe_full")
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    found = next(p for p in [out, *out.iterdir()] if (p / "xyz").is_dir())
    return found


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def check_invariances(descriptor, structure, absorber: int, *, seed: int = 0, rtol: float = 1e-10) -> None:
    """Rotation, translation, and neighbour-permutation invariance, for any descriptor.

    Every descriptor's tests call this, so a new descriptor is checked the same way.
    """
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    ref = descriptor.create(structure, absorber)
    scale = np.abs(ref).max()

    rotated = replace(structure, positions=structure.positions @ random_rotation(rng).T)
    np.testing.assert_allclose(descriptor.create(rotated, absorber), ref, rtol=rtol, atol=rtol * scale)

    shifted = replace(structure, positions=structure.positions + rng.normal(scale=10.0, size=3))
    np.testing.assert_allclose(descriptor.create(shifted, absorber), ref, rtol=rtol, atol=rtol * scale)

    perm = rng.permutation(len(structure))
    permuted = replace(structure, numbers=structure.numbers[perm], positions=structure.positions[perm])
    new_absorber = int(np.flatnonzero(perm == absorber)[0])
    np.testing.assert_allclose(descriptor.create(permuted, new_absorber), ref, rtol=rtol, atol=rtol * scale)


def pytest_configure(config):
    """One torch thread: small test models gain nothing from more, and CI has two cores."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)
