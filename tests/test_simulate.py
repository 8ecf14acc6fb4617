"""FEFF10 simulations: input generation, real runs on tiny complexes, crash safety, Dask, bad input."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from xanesnet.errors import XanesnetError
from xanesnet.io.structures import Structure, read_structure
from xanesnet.simulate import (
    XMU_COLUMNS,
    FeffSettings,
    check_structure,
    feff_input,
    read_simulations,
    simulate,
    simulate_molecule,
)
from xanesnet.simulate.store import parts_dir

feff10 = pytest.importorskip("feff10")

REPO = Path(__file__).resolve().parents[1]


def zncl4(r: float = 2.25) -> str:
    """Tetrahedral [ZnCl4]2- with Zn-Cl = ``r`` Angstrom, in tmQM xyz format (a 3 s FEFF XANES run)."""
    a = r / np.sqrt(3)
    rows = [("Cl", a, a, a), ("Zn", 0, 0, 0), ("Cl", -a, -a, a), ("Cl", -a, a, -a), ("Cl", a, -a, -a)]
    body = "\n".join(f"{s} {x + 1:.6f} {y + 2:.6f} {z - 3:.6f}" for s, x, y, z in rows)
    return f"5\nCSD_code = ZNCL4 | q = -2 | S = 0 | Stoichiometry = Cl4Zn | MND = 4\n{body}\n"


BAD_INPUTS = {
    "noTM.xyz": ("2\nCO\nC 0 0 0\nO 0 0 1.13\n", r"noTM\.xyz: no first-row transition metal \(Ti-Zn\) to use as absorber"),
    "overlap.xyz": ("3\nx\nFe 0 0 0\nO 0 0 0.3\nO 0 0 2.0\n",
                    r"overlap\.xyz: atoms 0 and 1 are 0\.300 A apart \(closer than 0\.5 A\): overlapping atoms"),
    "garbled.xyz": ("two\nx\nFe 0 0 0\n", r"garbled\.xyz: line 1 should be the atom count, found 'two'"),
    "empty.xyz": ("", r"empty\.xyz: empty file"),
    "twoTM.xyz": ("3\nx\nFe 0 0 0\nCo 0 0 2.5\nO 0 0 -2\n", r"twoTM\.xyz: ambiguous absorber: 2 first-row transition metals"),
}


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bad"
    d.mkdir()
    for name, (text, _) in BAD_INPUTS.items():
        (d / name).write_text(text)
    return d


def small_molecule() -> Structure:
    # Fe is not the first atom and not at the origin; elements out of Z order.
    numbers = np.array([8, 26, 1, 6, 1, 8])
    positions = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 1.0], [3.0, 2.0, 1.0], [1.0, 4.0, 1.0], [1.0, 5.0, 1.0], [-1.0, 2.0, 1.0]])
    return Structure(name="toy", numbers=numbers, positions=positions, source="toy.xyz")


# --------------------------------------------------------------------------- input generation (no FEFF run)


def test_feff_input_potentials_ordering_centring() -> None:
    inp = feff_input(small_molecule(), None, "xanes")
    pots = [(p.ipot, p.z, p.tag) for p in inp.potentials]
    assert pots == [(0, 26, "Fe"), (1, 1, "H"), (2, 6, "C"), (3, 8, "O")]
    atoms = inp.atoms
    assert [(a.ipot, a.tag) for a in atoms] == [(0, "Fe"), (3, "O"), (1, "H"), (2, "C"), (1, "H"), (3, "O")]
    xyz = np.array([[a.x, a.y, a.z] for a in atoms])
    assert np.allclose(xyz[0], 0)
    expected = small_molecule().positions[[0, 2, 3, 4, 5]] - small_molecule().positions[1]
    assert np.allclose(xyz[1:], expected)
    assert inp.edge == "K" and inp.s02 == 1.0
    assert inp.other_cards == ["XANES 4.0", "SCF 2.5 0 6", "FMS 4.0", "RPATH -1"]
    assert feff_input(small_molecule(), 1, "xes").other_cards == ["XES -40 15 0.25", "SCF 2.5 0 6", "FMS 4.0", "RPATH -1"]
    assert "XANES 4.0" in inp.to_string()


def test_feff_input_absorber_and_spectrum_checked() -> None:
    with pytest.raises(XanesnetError, match=r"^toy\.xyz: absorber O \(atom 0\) is not a first-row transition metal \(Ti-Zn\)$"):
        feff_input(small_molecule(), 0, "xanes")
    with pytest.raises(XanesnetError, match=r"spectrum must be one of 'xanes', 'xes', not 'both'"):
        feff_input(small_molecule(), None, "both")


def test_settings_reject_unknown_keys() -> None:
    with pytest.raises(XanesnetError, match=r"^unknown FEFF setting\(s\) 'fms_radius'; valid: edge, s02, xanes_cards, .*min_distance$"):
        FeffSettings.from_dict({"fms_radius": 5.0})
    with pytest.raises(XanesnetError, match=r"timeout must be positive, got 0"):
        FeffSettings(timeout=0)
    s = FeffSettings.from_dict({"common_cards": ["SCF 3.0 0 6", "FMS 5.0", "RPATH -1"]})
    assert s.cards("xanes") == ["XANES 4.0", "SCF 3.0 0 6", "FMS 5.0", "RPATH -1"]
    assert "timeout" not in s.result_dict()


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_check_structure_messages(bad_dir: Path, name: str) -> None:
    with pytest.raises(XanesnetError, match=BAD_INPUTS[name][1]):
        check_structure(read_structure(bad_dir / name))


def test_missing_feff_gives_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "feff10", None)  # makes `import feff10` raise ImportError
    (tmp_path / "a.xyz").write_text(zncl4())
    with pytest.raises(XanesnetError, match=r"^feff10 is not installed; install it with: pip install xanesnet\[simulate\]$"):
        simulate([tmp_path / "a.xyz"], tmp_path / "out.h5", progress=False)
    assert not (tmp_path / "out.h5").exists()


def test_missing_dask_gives_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    (tmp_path / "a.xyz").write_text(zncl4())
    with pytest.raises(XanesnetError, match=r"^dask\.distributed is not installed; install it with: pip install xanesnet\[cluster\]$"):
        simulate([tmp_path / "a.xyz"], tmp_path / "out.h5", scheduler="tcp://127.0.0.1:1", progress=False)


# --------------------------------------------------------------------------- batches without FEFF runs


def test_bad_inputs_recorded_not_raised(bad_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    summary = simulate([bad_dir], out, progress=False)
    assert summary.done == [] and summary.skipped == {}
    assert sorted(summary.failed) == sorted(Path(n).stem for n in BAD_INPUTS)
    with h5py.File(out, "r") as f:
        for name, (_, pattern) in BAD_INPUTS.items():
            g = f[Path(name).stem]
            assert g.attrs["status"] == "failed"
            assert "\n" not in g.attrs["error"]
            assert re.search(pattern, g.attrs["error"]), g.attrs["error"]
            assert re.search(pattern, summary.failed[Path(name).stem])
        assert "numbers" in f["twoTM"] and "numbers" not in f["garbled"] and "numbers" not in f["overlap"]
    # absorber outside Ti-Zn, asked for explicitly
    (tmp_path / "pt.xyz").write_text("2\nx\nPt 0 0 0\nCl 0 0 2.3\n")
    summary = simulate([tmp_path / "pt.xyz"], tmp_path / "pt.h5", absorber="Pt", progress=False)
    assert summary.failed["pt"].endswith("pt.xyz: absorber Pt (atom 0) is not a first-row transition metal (Ti-Zn)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "out.h5", "pt.h5", "pt.xyz"]  # no .lock, no .parts/
    # rerun: everything skipped, nothing added
    again = simulate([bad_dir], out, progress=False)
    assert len(again.skipped) == len(BAD_INPUTS) and not again.failed and not again.done
    assert set(again.skipped.values()) == {"failed before (retry_failed=True to retry)"}


def test_rerun_with_other_settings_refused(bad_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    simulate([bad_dir], out, progress=False)
    with pytest.raises(XanesnetError, match=r"out\.h5: was written with other settings \(spectrum: file has xanes, asked for xes\); use another output file"):
        simulate([bad_dir], out, spectrum="xes", progress=False)
    simulate([bad_dir], out, progress=False, timeout=5)  # the time limit does not change results


def test_concurrent_run_refused(bad_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    fd = os.open(tmp_path / "out.h5.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(XanesnetError, match=r"out\.h5: another simulation run is writing this file"):
            simulate([bad_dir], out, progress=False)
    finally:
        os.close(fd)


def test_duplicate_names_refused(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.xyz").write_text(zncl4())
    with pytest.raises(XanesnetError, match=r"two inputs share the name 'x'"):
        simulate([tmp_path / "a", tmp_path / "b"], tmp_path / "out.h5", progress=False)


# Kill points inside the writer, reached deterministically by bad-input molecules (no FEFF run needed).
_KILLER = textwrap.dedent("""
    import os, signal, sys
    import h5py
    from xanesnet.simulate import simulate, store
    point, out, *paths = sys.argv[1:]
    calls = {"n": 0}
    def kill_on(n):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
    if point == "part":      # inside a part file, after a dataset, before it is renamed
        orig_create = h5py.Group.create_dataset
        def create_dataset(self, *a, **k):
            d = orig_create(self, *a, **k)
            kill_on(3)
            return d
        h5py.Group.create_dataset = create_dataset
    elif point == "merge":   # halfway through copying the parts into the staging copy
        orig_copy = h5py.Group.copy
        def copy(self, *a, **k):
            orig_copy(self, *a, **k)
            kill_on(3)
        h5py.Group.copy = copy
    elif point == "commit":  # after the merged file replaced the old one, before the parts are deleted
        orig_commit = store._commit
        def commit(tmp, final):
            orig_commit(tmp, final)
            if final.name == os.path.basename(out):
                kill_on(2)
        store._commit = commit
    simulate(paths, out, progress=False)
""")


@pytest.mark.parametrize("point", ["part", "merge", "commit"])
def test_sigkill_inside_writer_loses_nothing(bad_dir: Path, tmp_path: Path, point: str) -> None:
    out = tmp_path / "out.h5"
    proc = subprocess.run([sys.executable, "-c", _KILLER, point, str(out), str(bad_dir)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    summary = simulate([bad_dir], out, progress=False)
    assert len(summary.failed) + len(summary.skipped) == len(BAD_INPUTS)
    _check_complete(out, {Path(n).stem for n in BAD_INPUTS}, status="failed")


def _check_complete(out: Path, names: set[str], *, status: str, spectrum: str | None = None) -> None:
    """``out`` holds each name exactly once, complete, with no leftovers beside it."""
    with h5py.File(out, "r") as f:
        assert set(f) == names
        for name in names:
            assert f[name].attrs["status"] == status, (name, f[name].attrs["error"])
            if spectrum:
                table = f[name][spectrum][()]
                assert table.shape[1] == 6 and table.shape[0] > 50 and np.all(np.isfinite(table))
    assert not parts_dir(out).exists() or not any(parts_dir(out).iterdir())
    assert not out.with_name(out.name + ".merging").exists()


# --------------------------------------------------------------------------- real FEFF runs (tiny complexes)


def test_real_feff_xanes_and_xes_reusing_potentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from xanesnet.simulate import feff

    # work directories of killed processes are removed; those of live ones are kept
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(feff, "_stale_checked", False)
    dead, alive = tmp_path / "xanesnet-feff-999999999-abc", tmp_path / f"xanesnet-feff-{os.getppid()}-abc"
    dead.mkdir(), alive.mkdir()
    (tmp_path / "zncl4.xyz").write_text(zncl4())
    structure = read_structure(tmp_path / "zncl4.xyz")
    both = simulate_molecule(structure, spectrum="both")
    assert both.ok, both.error_detail
    xanes, xes = both.spectra["xanes"], both.spectra["xes"]
    assert xanes.shape[1] == 6 and 50 < xanes.shape[0] < 80 and xes.shape == (221, 6)
    assert 9650 < xanes[0, 0] < 9665 and np.all(np.diff(xanes[:, 0]) > 0) and xanes[:, 3].max() > 0.5
    assert set(both.seconds) == {"xanes", "xes"} and both.absorber == 1
    assert alive.is_dir() and not dead.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "zncl4.xyz"])  # own work dir removed
    xes_alone = simulate_molecule(structure, spectrum="xes")  # with its own ATOMIC/POT stages
    assert np.allclose(xes_alone.spectra["xes"], xes, rtol=0, atol=1e-8)


def test_feff_failure_is_recorded(tmp_path: Path) -> None:
    (tmp_path / "zncl4.xyz").write_text(zncl4())
    result = simulate_molecule(read_structure(tmp_path / "zncl4.xyz"), settings=FeffSettings(timeout=0.001), spectrum="xanes")
    assert not result.ok and not result.spectra
    assert re.search(r"zncl4\.xyz: FEFF XANES run failed: stage '\w+' failed: timed out after 0s$", result.error), result.error
    assert "\n" not in result.error and "FeffPipelineError" in result.error_detail


def test_sigkill_mid_batch_then_resume(tmp_path: Path) -> None:
    mols = tmp_path / "mols"
    mols.mkdir()
    names = {f"zn{k}" for k in range(5)}
    for k in range(5):
        (mols / f"zn{k}.xyz").write_text(zncl4(2.15 + 0.05 * k))
    out = tmp_path / "out.h5"
    code = "import sys; from xanesnet.simulate import simulate; simulate([sys.argv[1]], sys.argv[2], merge_every=1, progress=False)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(mols), str(out)], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        # kill while the third molecule runs: two are written, one may be half-way
        if len(_finished(out)) >= 2:
            time.sleep(0.7)
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    summary = simulate([mols], out, progress=False)
    assert 2 <= len(summary.skipped) <= 4 and not summary.failed
    assert sorted(summary.done) == sorted(names - set(summary.skipped))
    _check_complete(out, names, status="done", spectrum="xanes")
    data = read_simulations(out, "xanes")
    assert [d.structure.name for d in data] == sorted(names)
    d = data[0]
    assert d.absorber == 1 and d.structure.charge == -2 and d.structure.numbers.tolist() == [17, 30, 17, 17, 17]
    assert np.array_equal(d.spectrum.energy, d.spectrum.meta["table"][:, XMU_COLUMNS.index("omega")])
    assert np.array_equal(d.spectrum.intensity, d.spectrum.meta["table"][:, XMU_COLUMNS.index("mu")])
    assert read_simulations(out, "xes") == []


def _finished(out: Path) -> set[str]:
    """Names finished so far: merged into the file or waiting as parts (a part being merged is in both)."""
    names = {p.stem for p in parts_dir(out).glob("*.h5")}
    try:
        with h5py.File(out, "r") as f:
            names |= set(f)
    except OSError:
        pass
    return names


def test_dask_local_cluster(tmp_path: Path, bad_dir: Path) -> None:
    distributed = pytest.importorskip("distributed")
    (bad_dir / "zncl4.xyz").write_text(zncl4())
    out = tmp_path / "out.h5"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        summary = simulate([bad_dir], out, scheduler=cluster, spectrum="xanes", progress=False)
    assert summary.done == ["zncl4"] and len(summary.failed) == len(BAD_INPUTS)
    (data,) = read_simulations(out, "xanes")
    assert data.structure.name == "zncl4" and data.spectrum.energy.shape[0] > 50


def test_read_simulations_errors(tmp_path: Path) -> None:
    with pytest.raises(XanesnetError, match=r"nope\.h5: no such file"):
        read_simulations(tmp_path / "nope.h5")
    with pytest.raises(XanesnetError, match=r"spectrum must be one of 'xanes', 'xes', not 'both'"):
        read_simulations(tmp_path / "nope.h5", "both")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "something else"
    with pytest.raises(XanesnetError, match=r"other\.h5: not a xanesnet simulation file"):
        read_simulations(tmp_path / "other.h5")
