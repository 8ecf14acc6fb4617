"""predict --out FILE.h5: the schema, chunked writing, resume, kill -9 at the worst moments, workers and Dask.

Tiny data: the shipped example molecules (copied under several names where
a test needs more of them) and the shipped models.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import EXAMPLES, ROOT

from xanesnet.cli import default_model, main
from xanesnet.io.results import ChunkResult, GroupInfo, ModelRows, ResultStore, parts_dir, read_results, read_skipped
from xanesnet.screening import predict_library

#: One molecule per metal family the tests need: Fe (the FDMNES model), Co, Zn, Cr (FEFF models).
FEW = ("ferrocene", "hexaamminecobalt", "tetrachlorozincate", "chromium_hexacarbonyl")


def library(tmp_path: Path, names=FEW, copies: int = 1) -> Path:
    """A directory of example molecules, each under ``copies`` names."""
    out = tmp_path / "lib"
    out.mkdir(exist_ok=True)
    for name in names:
        for c in range(copies):
            shutil.copy(EXAMPLES / f"{name}.xyz", out / (f"{name}.xyz" if copies == 1 else f"{name}_{c:03d}.xyz"))
    return out


def as_dict(results) -> dict:
    """Rows by (group, id), to compare files whatever their row order."""
    return {(g, i): (r.mean[k], r.std[k], r.trusted[k], r.score[k]) for g, r in results.items() for k, i in enumerate(r.ids)}


def assert_same_results(a: dict, b: dict) -> None:
    """Same rows; values equal up to float32 rounding (a network's sums depend on how many rows share a batch)."""
    assert set(a) == set(b)
    for key in a:
        for x, y in zip(a[key], b[key]):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6 * max(1.0, float(np.max(np.abs(y)))))


def test_schema_and_values_match_the_text_output(tmp_path, capsys):
    lib = library(tmp_path)
    out = tmp_path / "r.h5"
    assert main(["predict", str(lib), "--out", str(out), "--spectrum", "both", "--no-progress"]) == 0
    assert "predicted 4 molecules" in capsys.readouterr().out
    results = read_results(out)
    assert set(results) == {f"{m}-k-{s}" for m in ("co", "zn", "cr") for s in ("xanes-feff", "xes-feff")} | {"fe-k-xanes", "fe-k-xes-feff"}
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "xanesnet-predictions"
        assert json.loads(f.attrs["request"])["spectra"] == ["xanes", "xes"]
        g = f["fe-k-xanes"]
        m = len(g["energy"])
        assert g["mean"].shape == g["std"].shape == (1, m) and g["mean"].dtype == np.float32
        assert g["ids"].shape == g["trusted"].shape == g["score"].shape == g["extrapolation"].shape == (1,)
        assert g["trusted"].dtype == bool and g["absorber_atoms"][0, 0] == 0
        config = json.loads(g.attrs["config"])
        assert config == json.loads((default_model("Fe", "xanes") / "config.json").read_text())
        assert g.attrs["spectrum"] == "xanes" and g.attrs["uncertainty_mode"] == "ensemble"

    # the same numbers as the per-molecule text files (to float32)
    for spectrum in ("xanes", "xes"):
        txt = tmp_path / f"txt-{spectrum}"
        assert main(["predict", str(lib), "--out", str(txt), "--spectrum", spectrum, "--no-progress"]) == 0
        for name in FEW:
            element = {"ferrocene": "fe", "hexaamminecobalt": "co", "tetrachlorozincate": "zn", "chromium_hexacarbonyl": "cr"}[name]
            group = f"{element}-k-{spectrum}" + ("" if (element, spectrum) == ("fe", "xanes") else "-feff")
            table = np.loadtxt(next(txt.glob(f"{name}*.txt")))
            r = results[group]
            k = list(r.ids).index(name)
            np.testing.assert_allclose(r.energy, table[:, 0], atol=1e-4)
            np.testing.assert_allclose(r.mean[k], table[:, 1], rtol=1e-6, atol=1e-7 * np.abs(table[:, 1]).max())
            np.testing.assert_allclose(r.std[k], table[:, 2], rtol=1e-6, atol=1e-7 * np.abs(table[:, 2]).max())


def test_chunks_are_written_as_they_go_and_merged_in_order(tmp_path):
    lib = library(tmp_path, names=("hexaamminecobalt", "tetrachlorozincate"), copies=5)
    out = tmp_path / "r.h5"
    added = []
    original = ResultStore.add

    def spy(self, chunk):
        original(self, chunk)
        added.append(len(list(self.parts.glob("*.npz"))) if self.parts.is_dir() else 0)

    ResultStore.add = spy
    try:
        summary = predict_library([lib], out, model_for=default_model, chunk_size=3, progress=False)
    finally:
        ResultStore.add = original
    assert summary.predicted == 10 and len(added) == 4  # chunks of 3, 3, 3, 1
    assert max(added) >= 1  # parts were on disk before the final merge
    assert not parts_dir(out).exists()
    results = read_results(out)
    assert list(results["co-k-xanes-feff"].ids) == [f"hexaamminecobalt_{c:03d}" for c in range(5)]
    assert len(results["zn-k-xanes-feff"].ids) == 5


def synthetic(ids: list[str], m: int = 3) -> ChunkResult:
    n = len(ids)
    rows = ModelRows(ids=ids, mean=np.arange(n * m, dtype=np.float32).reshape(n, m), std=np.ones((n, m), np.float32),
                     trusted=np.ones(n, bool), score=np.zeros(n, np.float32), extrapolation=np.zeros(n, np.float32),
                     absorber_atoms=[[0]] * n)
    return ChunkResult(groups={"g": (GroupInfo({"weights_sha256": "abc"}, np.arange(m, dtype=float)), rows)})


def test_store_merges_when_parts_match_the_file_and_never_duplicates(tmp_path):
    out = tmp_path / "s.h5"
    store = ResultStore(out, {"request": "x"}, merge_min_rows=2)
    store.add(synthetic(["a"]))
    assert len(list(store.parts.glob("*.npz"))) == 1 and store.done_ids() == {"a"}
    store.add(synthetic(["b"]))  # 2 pending >= max(2, 0 in the file): merged
    assert not store.parts.exists() and list(read_results(out)["g"].ids) == ["a", "b"]
    store.add(synthetic(["c"]))  # 1 pending < 2 in the file: waits
    kept = tmp_path / "kept.h5"
    shutil.copy(next(store.parts.glob("*.npz")), kept)
    store.merge()
    # a kill between putting the merged file in place and deleting its parts leaves a part whose rows are in the file
    store.parts.mkdir()
    shutil.copy(kept, store.parts / kept.name)
    again = ResultStore(out, {"request": "x"})
    assert again.done_ids() == {"a", "b", "c"}
    assert again.merge() == 0 and list(read_results(out)["g"].ids) == ["a", "b", "c"]
    with pytest.raises(Exception, match="was written for another request"):
        ResultStore(out, {"request": "y"})


def test_rerun_skips_what_is_there_and_matches_one_run(tmp_path, capsys):
    lib = library(tmp_path, names=FEW[1:], copies=2)
    first = tmp_path / "first"
    first.mkdir()
    for p in sorted(lib.glob("*.xyz"))[:3]:
        shutil.copy(p, first / p.name)
    out, ref = tmp_path / "r.h5", tmp_path / "ref.h5"
    assert main(["predict", str(first), "--out", str(out), "--no-progress"]) == 0
    assert main(["predict", str(lib), "--out", str(out), "--no-progress"]) == 0
    assert "predicted 3 molecules" in capsys.readouterr().out.splitlines()[-1]
    assert main(["predict", str(lib), "--out", str(ref), "--no-progress", "--chunk-size", "2"]) == 0
    assert_same_results(as_dict(read_results(out)), as_dict(read_results(ref)))
    code = main(["predict", str(lib), "--out", str(out), "--spectrum", "xes", "--no-progress"])
    assert code == 2 and "was written for another request" in capsys.readouterr().err


def test_bad_files_are_recorded_with_skip_bad_and_stop_the_run_without(tmp_path, capsys):
    lib = library(tmp_path, names=FEW[1:])
    (lib / "aaa_broken.xyz").write_text("3\nbroken\nCo 0 0 0\n")
    out = tmp_path / "r.h5"
    code = main(["predict", str(lib), "--out", str(out), "--no-progress", "--chunk-size", "1"])
    assert code == 2 and "aaa_broken.xyz: line 1 says 3 atoms but 1 coordinate rows follow" in capsys.readouterr().err
    assert read_results(out) == {}  # the bad file came first: nothing predicted, the file is valid
    assert main(["predict", str(lib), "--out", str(out), "--no-progress", "--skip-bad"]) == 0
    assert read_skipped(out) == [("aaa_broken", f"{lib / 'aaa_broken.xyz'}: line 1 says 3 atoms but 1 coordinate rows follow")]
    assert sum(len(r.ids) for r in read_results(out).values()) == 3
    assert main(["predict", str(lib), "--out", str(out), "--no-progress", "--skip-bad"]) == 0
    assert "predicted 0 molecules" in capsys.readouterr().out.splitlines()[-1]


def test_options_that_need_an_hdf5_output(tmp_path, capsys):
    lib = library(tmp_path, names=FEW[1:2])
    assert main(["predict", str(lib), "--out", str(tmp_path / "d"), "--spectrum", "both"]) == 2
    assert "several spectra in one pass need one HDF5 output" in capsys.readouterr().err
    assert main(["predict", str(lib), "--out", str(tmp_path / "d"), "--workers", "2"]) == 2
    assert "--workers and --scheduler write one HDF5 file" in capsys.readouterr().err
    assert main(["predict", str(lib), "--out", str(tmp_path / "r.h5"), "--json", str(tmp_path / "a.json")]) == 2
    assert "--json writes per-molecule files; not with an HDF5 output" in capsys.readouterr().err


# kill -9 inside the writer at its most delicate moments, then a rerun: the file must open and be complete
KILL_SNIPPET = r"""
import os, signal, sys
import xanesnet.io.results as results
point, lib, out = sys.argv[1], sys.argv[2], sys.argv[3]
calls = {"n": 0}

def kill_on(n):
    calls["n"] += 1
    if calls["n"] == n:
        os.kill(os.getpid(), signal.SIGKILL)

def on_commit(match, n, after=False):
    commit = results._commit
    def wrapped(tmp, final):
        hit = match(final)
        if hit and not after:
            kill_on(n)
        commit(tmp, final)
        if hit and after:
            kill_on(n)
    results._commit = wrapped

if point == "part-before-rename":
    on_commit(lambda final: final.parent.name == "r.h5.parts", 3)
elif point == "merge-half-appended":  # inside the merge, after some rows went into the temporary copy
    append = results._append_arrays
    def half(g, arrays):
        append(g, arrays)
        g.file.flush()
        if ".r.h5." in g.file.filename:
            kill_on(2)
    results._append_arrays = half
elif point == "merge-before-rename":  # the first commit of r.h5 creates it empty; the second is the merge
    on_commit(lambda final: final.name == "r.h5", 2)
elif point == "after-rename-before-cleanup":
    on_commit(lambda final: final.name == "r.h5", 2, after=True)
from xanesnet.cli import main
sys.exit(main(["predict", lib, "--out", out, "--no-progress", "--chunk-size", "2"]))
"""


@pytest.fixture(scope="module")
def kill_library(tmp_path_factory):
    """Nine molecules (three FEFF-model metals, three names each) and their predictions from one clean run."""
    root = tmp_path_factory.mktemp("kill")
    lib = library(root, names=FEW[1:], copies=3)
    predict_library([lib], root / "ref.h5", model_for=default_model, progress=False)
    return lib, as_dict(read_results(root / "ref.h5"))


@pytest.mark.parametrize("point", ["part-before-rename", "merge-half-appended", "merge-before-rename",
                                   "after-rename-before-cleanup"])
def test_sigkill_inside_the_writer_then_rerun_completes(tmp_path, point, kill_library):
    lib, expected = kill_library
    out = tmp_path / "r.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # merge_min_rows is large: merges happen at the end only, so every kill point is reached in one run
    proc = subprocess.run([sys.executable, "-c", KILL_SNIPPET, point, str(lib), str(out)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    with h5py.File(out, "r") as f:  # whatever the moment, the file opens
        assert f.attrs["format"] == "xanesnet-predictions"
    assert main(["predict", str(lib), "--out", str(out), "--no-progress"]) == 0
    results = read_results(out)
    assert sorted(i for r in results.values() for i in r.ids) == sorted(p.stem for p in lib.glob("*.xyz"))
    assert not parts_dir(out).exists() and not list(tmp_path.glob(".r.h5.*.tmp"))
    assert_same_results(as_dict(results), expected)


def test_sigkill_of_a_running_cli_then_rerun_completes(tmp_path):
    """A real kill -9 of the whole process group at an arbitrary moment of a longer run."""
    lib = library(tmp_path, names=FEW[1:], copies=20)
    out = tmp_path / "r.h5"
    cmd = [sys.executable, "-m", "xanesnet.cli", "predict", str(lib), "--out", str(out), "--no-progress", "--chunk-size", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import time

        deadline = time.time() + 120
        while time.time() < deadline and len(list(parts_dir(out).glob("*.npz"))) < 3:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with h5py.File(out, "r") as f:  # the file opens
        request = f.attrs["request"]
    done_before = ResultStore(out, {"request": request}).done_ids()
    assert 0 < len(done_before) < 60
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"predicted {60 - len(done_before)} molecules" in rerun.stdout
    ids = sorted(i for r in read_results(out).values() for i in r.ids)
    assert ids == sorted(p.stem for p in lib.glob("*.xyz"))


def test_workers_and_dask_write_the_same_file(tmp_path):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is an optional extra: pip install xanesnet[cluster]")
    lib = library(tmp_path, names=FEW[1:], copies=2)
    ref, pool, dask = tmp_path / "ref.h5", tmp_path / "pool.h5", tmp_path / "dask.h5"
    predict_library([lib], ref, model_for=default_model, chunk_size=3, progress=False)
    predict_library([lib], pool, model_for=default_model, chunk_size=3, workers=2, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        predict_library([lib], dask, model_for=default_model, chunk_size=3, scheduler=cluster.scheduler_address, progress=False)
    expected = read_results(ref)
    for other in (pool, dask):
        got = read_results(other)
        for name, r in expected.items():
            assert list(got[name].ids) == list(r.ids)  # same order: chunks are collected in input order
            np.testing.assert_allclose(got[name].mean, r.mean, rtol=1e-5, atol=1e-6 * np.abs(r.mean).max())


def test_readme_snippet_loads_a_results_file_and_plots_a_map(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    readme = (ROOT / "README.md").read_text()
    code = "import matplotlib.pyplot" + readme.split("```python\nimport matplotlib.pyplot", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 10
    predict_library([library(tmp_path, names=("ferrocene", "hexacyanoferrate"))], tmp_path / "results.h5",
                    model_for=default_model, progress=False)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "fe_map.png").stat().st_size > 0
