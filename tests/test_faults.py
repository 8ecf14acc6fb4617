"""Faults: read-only and missing output locations, a full disk, concurrent runs, kills.

Each ends in one line naming the path and exit code 2 (or, for kills, in a whole result), with nothing partial and
no temporary file left. A read-only location and a full disk are real where the machine allows (a non-root user's
read-only directory; a small tmpfs mounted by root), with an injected ``OSError`` where it does not.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT

from xanesnet.cli import main


def _mount_tmpfs(path: Path, options: str) -> bool:
    if os.geteuid() != 0 or sys.platform != "linux":
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


@contextlib.contextmanager
def _mounted(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = _mount_tmpfs(path, options)
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def readonly_dir(tmp_path):
    """A directory nobody can write to: a read-only tmpfs (root), or mode 555 (other users)."""
    path = tmp_path / "ro"
    if os.geteuid() != 0:
        path.mkdir()
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    with _mounted(path, "ro,size=64k") as ok:
        if not ok:
            pytest.skip("running as root without permission to mount a read-only tmpfs")
        yield path


@pytest.fixture
def full_disk(tmp_path):
    """A directory on a 64 kB tmpfs (root only; elsewhere the tests inject ENOSPC instead)."""
    path = tmp_path / "full"
    with _mounted(path, "size=64k") as ok:
        yield path if ok else None


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.name.endswith(".tmp") or ".tmp" in p.name]


def _features_npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "f.npz"
    np.savez(path, x=rng.random((24, 6)), y=rng.random((24, 8)), energy=np.linspace(7100, 7140, 8))
    return path


def _one_line_exit_2(capsys, args, command, where) -> str:
    code = main(args)
    _, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"xanesnet {command}: error: {where}"), err
    return err


# --------------------------------------------------------------------------- read-only and missing locations


def test_read_only_output_gives_one_line_for_every_writer(readonly_dir, tmp_path, capsys):
    ferrocene = str(EXAMPLES / "ferrocene.xyz")
    runs = {
        "predict": ["predict", ferrocene, "--out", str(readonly_dir / "p")],
        "featurize": ["featurize", ferrocene, "--out", str(readonly_dir / "f.npz"), "--no-progress"],
        "train": ["train", "--features", str(_features_npz(tmp_path)), "--out", str(readonly_dir / "m"), "--epochs", "1",
                  "--ensemble", "2", "--no-progress"],
        "select": ["select", ferrocene, str(EXAMPLES / "hexacyanoferrate.xyz"), "-n", "1", "--out", str(readonly_dir / "s.tsv"),
                   "--no-progress"],
    }
    for command, args in runs.items():
        err = _one_line_exit_2(capsys, args, command, readonly_dir)
        assert "cannot write here" in err
    assert list(readonly_dir.iterdir()) == []


def test_read_only_simulation_output_gives_one_line(readonly_dir, capsys):
    pytest.importorskip("feff10")
    err = _one_line_exit_2(capsys, ["simulate", str(EXAMPLES / "ferrocene.xyz"), "--out", str(readonly_dir / "s.h5"),
                                    "--no-progress"], "simulate", readonly_dir)
    assert "cannot write here" in err


def test_read_only_feature_cache_is_skipped_with_a_warning(readonly_dir, tmp_path, caplog):
    from xanesnet.data.dataset import featurize_files
    from xanesnet.descriptors import preset

    files = [EXAMPLES / "ferrocene.xyz", EXAMPLES / "hexacyanoferrate.xyz"]
    feats = featurize_files(files, preset("plain"), cache=readonly_dir / "features.h5")
    assert feats.x.shape == (2, preset("plain").n_features)
    assert "feature cache not updated" in caplog.text and list(readonly_dir.iterdir()) == []


def test_missing_output_directories_are_created_and_impossible_ones_refused(tmp_path, capsys):
    out = tmp_path / "new" / "deeper"
    assert main(["predict", str(EXAMPLES / "ferrocene.xyz"), "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["ferrocene.xanes.txt"]
    capsys.readouterr()
    (tmp_path / "file.txt").write_text("x")
    err = _one_line_exit_2(capsys, ["predict", str(EXAMPLES / "ferrocene.xyz"), "--out", str(tmp_path / "file.txt" / "o")],
                           "predict", tmp_path / "file.txt")
    assert "cannot write here" in err


def test_training_never_replaces_a_directory_that_is_not_a_model(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    err = _one_line_exit_2(capsys, ["train", "--features", str(_features_npz(tmp_path)), "--out", str(out), "--epochs", "1",
                                    "--ensemble", "2", "--no-progress"], "train", out)
    assert "is not a model directory" in err and (out / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- a full disk


def test_full_disk_predict_writes_nothing(full_disk, tmp_path, capsys, monkeypatch):
    """20 molecules: refused before writing on a real full disk; with ENOSPC on the 5th file, all-or-nothing."""
    mols = tmp_path / "mols"
    mols.mkdir()
    for k in range(20):
        (mols / f"m{k:02d}.xyz").write_text((EXAMPLES / "ferrocene.xyz").read_text())
    if full_disk is not None:
        err = _one_line_exit_2(capsys, ["predict", str(mols), "--out", str(full_disk)], "predict", full_disk)
        assert "no space left on the device" in err and list(full_disk.iterdir()) == []
    out = tmp_path / "out"
    calls = {"n": 0}
    write_text = Path.write_text

    def failing(self, *args, **kwargs):
        if self.parent == out:
            calls["n"] += 1
            if calls["n"] == 5:
                raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing)
    err = _one_line_exit_2(capsys, ["predict", str(mols), "--out", str(out)], "predict", out)
    assert "no space left on the device" in err
    assert list(out.iterdir()) == []  # not 4 of 20, and no temporary file


def test_full_disk_feature_cache_leaves_no_partial_file(full_disk, tmp_path, monkeypatch, caplog):
    import h5py

    from xanesnet.data.dataset import FeatureCache

    vectors = {f"{k:040x}": np.random.default_rng(k).random(4000) for k in range(10)}  # 320 kB
    if full_disk is not None:
        FeatureCache(full_disk / "features.h5").save("key", vectors)
        assert list(full_disk.iterdir()) == [] and "no space left" in caplog.text
    here = tmp_path / "cache"
    cache = FeatureCache(here / "features.h5")
    cache.save("key", dict(list(vectors.items())[:2]))
    before = (here / "features.h5").read_bytes()
    create = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        if name == list(vectors)[5]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    cache.save("key", vectors)
    assert (here / "features.h5").read_bytes() == before  # the old cache, whole
    assert sorted(p.name for p in here.iterdir()) == ["features.h5"]
    monkeypatch.undo()
    assert len(cache.load("key")) == 2


# --------------------------------------------------------------------------- concurrent runs on one output


def test_concurrent_predictions_into_one_directory(tmp_path):
    mols = tmp_path / "mols"
    mols.mkdir()
    for k in range(12):
        (mols / f"m{k:02d}.xyz").write_text((EXAMPLES / "ferrocene.xyz").read_text())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "xanesnet.cli", "predict", str(mols), "--out", str(out), "--json", str(out / "all.json")]
    for _ in range(2):
        runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for run in runs:
            _, err = run.communicate(timeout=300)
            assert run.returncode == 0, err
        tables = [np.loadtxt(p) for p in sorted(out.glob("*.txt"))]
        assert len(tables) == 12 and all(t.shape == tables[0].shape for t in tables)
        assert len(json.loads((out / "all.json").read_text())) == 12
        assert _temporaries(out) == []


def test_temporary_names_are_unique_and_stale_ones_swept(tmp_path):
    from xanesnet.io.files import sweep_stale, temporary_path

    names = {temporary_path(tmp_path / "a.txt") for _ in range(100)}
    assert len(names) == 100
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".a.txt.{int(dead.stdout)}.0123abcd.tmp"
    stale.write_text("left by a killed run")
    live = temporary_path(tmp_path / "a.txt")
    live.write_text("being written")
    sweep_stale(tmp_path)
    assert not stale.exists() and live.exists()


# --------------------------------------------------------------------------- kills


_SAVER = """
import sys, torch
from xanesnet.bundle import save_bundle
from xanesnet.models import build_model
net = build_model({"kind": "mlp", "hidden": [64]}, n_in=8, n_out=300)
i = 0
while True:
    save_bundle(sys.argv[1], {"round": i}, [net])
    if i == 0:
        print("saved", flush=True)
    i += 1
"""


def test_kill_during_model_replacement_leaves_a_whole_model(tmp_path):
    """kill -9 at random moments of a loop replacing one model: --out always holds a whole model, old or new."""
    from xanesnet.bundle import CONFIG_FILE, WEIGHTS_FILE, _sha256

    out = tmp_path / "m"
    rng = random.Random(0)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(out)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "saved"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.kill()
        proc.wait()
        assert sorted(p.name for p in out.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
        config = json.loads((out / CONFIG_FILE).read_text())
        assert config["weights_sha256"] == _sha256(out / WEIGHTS_FILE)
    from xanesnet.io.files import sweep_stale

    sweep_stale(tmp_path)  # what the next save does first
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_replacement_keeps_the_old_model_until_the_new_one_is_in_place(tmp_path, monkeypatch):
    import xanesnet.io.files as files

    old, new = tmp_path / "m", tmp_path / ".m.new"
    for path, tag in ((old, "old"), (new, "new")):
        path.mkdir()
        (path / "config.json").write_text(tag)
    monkeypatch.setattr(files.shutil, "rmtree", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # killed right after the exchange, before the old copy is removed
        files.replace_directory(new, old)
    assert (old / "config.json").read_text() == "new" and (new / "config.json").read_text() == "old"


def _descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` (pid -> start time), read from /proc."""
    parent_of, started = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                parent_of[int(entry)], started[int(entry)] = int(fields[1]), fields[19]
    found, frontier = {}, [root]
    while frontier:
        p = frontier.pop()
        for child, parent in parent_of.items():
            if parent == p and child not in found:
                found[child] = started[child]
                frontier.append(child)
    return found


def _running(pid: int, started: str) -> bool:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[19] == started and fields[0] != "Z"
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the child processes")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_simulate_ends_its_workers_and_resource_tracker(tmp_path, sig):
    pytest.importorskip("feff10")
    for name in ("ferrocene", "hexacyanoferrate", "iron_pentacarbonyl", "hexaaquairon"):
        (tmp_path / f"{name}.xyz").write_text((EXAMPLES / f"{name}.xyz").read_text())
    proc = subprocess.Popen([sys.executable, "-m", "xanesnet.cli", "simulate", str(tmp_path), "--out", str(tmp_path / "s.h5"),
                             "--workers", "2", "--no-progress"], cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        children: dict[int, str] = {}
        while time.monotonic() < deadline:  # the resource tracker and both pool workers have started
            children = _descendants(proc.pid)
            if len(children) >= 3:
                break
            time.sleep(0.2)
        assert len(children) >= 3, "simulate did not start its pool"
        time.sleep(1.0)
        children = _descendants(proc.pid)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_running(p, s) for p, s in children.items()):
            time.sleep(0.2)
        assert not [p for p, s in children.items() if _running(p, s)], "processes outlived simulate"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid, started in _descendants(proc.pid).items():  # only processes this test started
            if _running(pid, started):
                os.kill(pid, signal.SIGKILL)
