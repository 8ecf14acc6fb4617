"""The FEFF data source: reading the shared sets and our exported runs, and an export that merges instead of overwriting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data

from xanesnet.data.feff import EXTRA_DIR, FEFF_SPECTRA, XES_ARTIFACT_FACTOR, campaign_summary, export, extra_files, geometry_digest, load_feff, read_extra, read_feff_dir, read_feff_extra, write_feff_extra
from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import Spectrum
from xanesnet.io.structures import FIRST_ROW_TM, Structure
from xanesnet.simulate.feff import XMU_COLUMNS, MoleculeResult
from xanesnet.simulate.store import SimulatedSpectrum, ensure_store, header_for, read_simulations, write_part

ROOT = Path(__file__).resolve().parents[1]


def fake_table(e_fermi: float, scale: float, n: int = 40) -> np.ndarray:
    """An ``xmu.dat`` table (omega, e, k, mu, mu0, chi) on FEFF's absolute scale around ``e_fermi``."""
    e = np.linspace(-10.0, 30.0, n)
    mu = scale * (1 + np.tanh(e / 3)) / 2
    return np.column_stack([e + e_fermi, e, np.sqrt(np.abs(e)), mu, mu, np.zeros(n)])


def zncl4(name: str, r: float = 2.25) -> Structure:
    d = r / np.sqrt(3)
    pos = np.array([[0, 0, 0], [d, d, d], [-d, -d, d], [-d, d, -d], [d, -d, -d]], float)
    return Structure(name=name, numbers=np.array([30, 17, 17, 17, 17]), positions=pos, charge=-2.0, spin=None)


def simulation_file(path: Path, molecules: dict[str, float], *, merged: bool) -> Path:
    """A simulation file like ``xanesnet simulate --spectrum both`` writes: molecule name -> mu scale."""
    ensure_store(path, header_for("both", None, {"fake": True}))
    for name, scale in molecules.items():
        result = MoleculeResult(name=name, absorber=0, spectra={s: fake_table(9660.0, scale) for s in FEFF_SPECTRA},
                                cards={s: ["XANES 4.0"] for s in FEFF_SPECTRA}, feff_version="test")
        write_part(path, result, zncl4(name), source=f"{name}.xyz")
    if merged:
        from xanesnet.simulate.store import merge_parts

        merge_parts(path)
    return path


def test_export_adds_new_molecules_and_keeps_the_committed_ones(tmp_path):
    out = tmp_path / "extra"
    h5 = simulation_file(tmp_path / "first.h5", {"AAA": 1.0, "BBB": 2.0}, merged=True)
    assert export(h5, out) == {"Zn": {"kept": 0, "added": 2, "total": 2}}
    committed = {s.structure.name: s for s in read_feff_extra(out / "Zn.npz", "xes")}
    first_bytes = (out / "Zn.npz").read_bytes()
    # a new machine: the simulation file holds only the latest runs (and one molecule again, recomputed differently),
    # some still in unmerged parts
    h5b = simulation_file(tmp_path / "second.h5", {"BBB": 5.0, "CCC": 3.0}, merged=False)
    assert export(h5b, out) == {"Zn": {"kept": 2, "added": 1, "total": 3}}
    # the committed file is left byte for byte; the new molecule goes into a shard of its own
    assert (out / "Zn.npz").read_bytes() == first_bytes
    assert extra_files(out, "Zn") == [out / "Zn.npz", out / "Zn.1.npz"]
    assert [s.structure.name for s in read_feff_extra(out / "Zn.1.npz", "xanes")] == ["CCC"]
    for spectrum in FEFF_SPECTRA:
        sims = {s.structure.name: s for s in read_extra(out, "Zn", spectrum)}
        assert sorted(sims) == ["AAA", "BBB", "CCC"]
        np.testing.assert_array_equal(sims["BBB"].spectrum.intensity, committed["BBB"].spectrum.intensity)  # kept
        np.testing.assert_allclose(sims["CCC"].spectrum.intensity, fake_table(9660.0, 3.0)[:, 3])
        assert sims["CCC"].spectrum.meta["e_fermi"] == pytest.approx(9660.0)
        np.testing.assert_allclose(sims["CCC"].structure.positions, zncl4("CCC").positions)
        assert sims["CCC"].structure.charge == -2.0 and sims["CCC"].structure.spin is None
    assert not list(out.glob(".*"))  # no temporary files left
    assert export(h5b, out)["Zn"]["added"] == 0  # nothing new: no file is written
    assert extra_files(out, "Zn") == [out / "Zn.npz", out / "Zn.1.npz"]
    h5c = simulation_file(tmp_path / "third.h5", {"DDD": 1.0}, merged=True)
    assert export(h5c, out) == {"Zn": {"kept": 3, "added": 1, "total": 4}}
    assert extra_files(out, "Zn")[-1] == out / "Zn.2.npz"


def test_export_round_trips_the_raw_feff_output(tmp_path):
    h5 = simulation_file(tmp_path / "sim.h5", {"AAA": 1.5}, merged=True)
    export(h5, tmp_path)
    for spectrum in FEFF_SPECTRA:
        [raw] = read_simulations(h5, spectrum)
        [back] = read_feff_extra(tmp_path / "Zn.npz", spectrum)
        np.testing.assert_array_equal(back.spectrum.energy, raw.spectrum.meta["table"][:, XMU_COLUMNS.index("omega")])
        np.testing.assert_array_equal(back.spectrum.intensity, raw.spectrum.meta["table"][:, XMU_COLUMNS.index("mu")])
        np.testing.assert_array_equal(back.structure.numbers, raw.structure.numbers)


def test_export_packs_decimal_numbers_without_losing_a_bit(tmp_path):
    # a committed shard (float64 as FEFF and tmQM print them) written again: FEFF's fixed decimals are packed ...
    committed = extra_files(EXTRA_DIR, "Fe")[1]
    sims = {s: read_feff_extra(committed, s) for s in FEFF_SPECTRA}
    write_feff_extra(tmp_path / "Fe.npz", sims, {})
    with np.load(tmp_path / "Fe.npz") as d:
        assert {"xanes_mu__decimals", "xes_mu__decimals", "xes_omega__decimals"} <= set(d.files)
        assert d["xes_mu"].dtype == np.uint8
    assert (tmp_path / "Fe.npz").stat().st_size < 0.75 * committed.stat().st_size
    # ... and read back bit for bit
    for s in FEFF_SPECTRA:
        for a, b in zip(sims[s], read_feff_extra(tmp_path / "Fe.npz", s), strict=True):
            for x, y in ((a.spectrum.energy, b.spectrum.energy), (a.spectrum.intensity, b.spectrum.intensity),
                         (a.structure.positions, b.structure.positions)):
                assert x.dtype == y.dtype == np.float64 and x.tobytes() == y.tobytes()
            assert a.spectrum.meta["e_fermi"] == b.spectrum.meta["e_fermi"] and a.structure.charge == b.structure.charge
    # numbers that are not short decimals (and NaN) are stored as they are
    h5 = simulation_file(tmp_path / "sim.h5", {"AAA": np.pi}, merged=True)
    export(h5, tmp_path / "out")
    with np.load(tmp_path / "out" / "Zn.npz") as d:
        assert "xes_mu__decimals" not in d.files and d["xes_mu"].dtype == np.float64
        assert "spin__decimals" not in d.files and np.isnan(d["spin"]).all()


def tmqm_file(root: Path, structure: Structure, metal: str = "Zn") -> Path:
    """``structure`` as a tmQM-style ``<root>/<metal>/<name>.xyz`` that reads back bit for bit."""
    (root / metal).mkdir(parents=True, exist_ok=True)
    comment = f"CSD_code = {structure.name}" + ("" if structure.charge is None else f" | q = {structure.charge:g}")
    rows = [f"{sym} {x!r} {y!r} {z!r}" for sym, (x, y, z) in zip(structure.symbols, structure.positions.tolist())]
    path = root / metal / f"{structure.name}.xyz"
    path.write_text("\n".join([str(len(structure)), comment, *rows]) + "\n")
    return path


def test_export_by_reference_stores_a_digest_and_reads_the_tmqm_geometry_back(tmp_path):
    tmqm = tmp_path / "tmqm"
    for name in ("AAA", "BBB"):
        tmqm_file(tmqm, zncl4(name))
    h5 = simulation_file(tmp_path / "sim.h5", {"AAA": 1.0, "BBB": 2.0}, merged=True)
    assert export(h5, tmp_path / "ref", geometries=tmqm)["Zn"]["added"] == 2
    export(h5, tmp_path / "inline")
    with np.load(tmp_path / "ref" / "Zn.npz") as d:
        assert not {"positions", "numbers", "charge", "spin"} & set(d.files)
        assert d["geometry_sha256"].shape == (2, 8)
    for spectrum in FEFF_SPECTRA:
        inline = read_feff_extra(tmp_path / "inline" / "Zn.npz", spectrum)
        by_ref = read_feff_extra(tmp_path / "ref" / "Zn.npz", spectrum, geometries=tmqm)
        for a, b in zip(inline, by_ref, strict=True):
            assert a.structure.positions.tobytes() == b.structure.positions.tobytes()
            assert (a.structure.charge, a.structure.spin, a.absorber) == (b.structure.charge, b.structure.spin, b.absorber)
            np.testing.assert_array_equal(a.structure.numbers, b.structure.numbers)
            assert a.spectrum.intensity.tobytes() == b.spectrum.intensity.tobytes()
    # a geometry that is no longer the one FEFF ran on, or is gone, is an error naming the molecule and the file
    moved = zncl4("BBB", r=2.3)
    tmqm_file(tmqm, moved)
    with pytest.raises(XanesnetError, match=r"Zn\.npz.*BBB: the tmQM geometry .*BBB\.xyz is not the one FEFF ran on"):
        read_feff_extra(tmp_path / "ref" / "Zn.npz", "xes", geometries=tmqm)
    (tmqm / "Zn" / "BBB.xyz").unlink()
    with pytest.raises(XanesnetError, match=r"BBB: no tmQM geometry"):
        read_feff_extra(tmp_path / "ref" / "Zn.npz", "xes", geometries=tmqm)
    # and a run whose geometry is not the tmQM file's is not stored by reference
    tmqm_file(tmqm, moved)
    h5b = simulation_file(tmp_path / "sim2.h5", {"BBB": 2.0}, merged=True)
    with pytest.raises(XanesnetError, match=r"BBB: its geometry is not .*BBB\.xyz's"):
        export(h5b, tmp_path / "ref2", geometries=tmqm)
    assert not (tmp_path / "ref2").exists() or not list((tmp_path / "ref2").iterdir())


def test_digest_tells_apart_what_a_geometry_holds():
    base = zncl4("AAA")
    digests = {geometry_digest(s) for s in (base, zncl4("AAA", r=2.25 + 1e-12), dataclasses.replace(base, charge=-1.0),
                                            dataclasses.replace(base, spin=1.0),
                                            dataclasses.replace(base, numbers=np.array([30, 17, 17, 17, 35])))}
    assert len(digests) == 5 and geometry_digest(dataclasses.replace(base, name="other")) == geometry_digest(base)


def test_write_refuses_mismatched_spectra(tmp_path):
    h5 = simulation_file(tmp_path / "sim.h5", {"AAA": 1.0, "BBB": 1.0}, merged=True)
    xanes, xes = read_simulations(h5, "xanes"), read_simulations(h5, "xes")
    with pytest.raises(ValueError, match="same molecules"):
        write_feff_extra(tmp_path / "Zn.npz", {"xanes": xanes, "xes": xes[::-1]}, {})


def test_missing_simulation_file_is_a_clear_error(tmp_path):
    with pytest.raises(XanesnetError, match="no such simulation file"):
        export(tmp_path / "nothing.h5", tmp_path)


def test_committed_runs_read_for_every_metal():
    import json

    def refers_to_tmqm(path: Path) -> bool:
        with np.load(path) as d:
            return "geometry" in json.loads(str(d["meta"]))

    if any(refers_to_tmqm(p) for metal in FIRST_ROW_TM for p in extra_files(EXTRA_DIR, metal)):
        shared_data("tmqm_3d.tar.gz")  # those files read their geometries (checked by digest) from tmQM
    for metal in FIRST_ROW_TM:
        for spectrum in FEFF_SPECTRA:
            sims = read_extra(EXTRA_DIR, metal, spectrum)
            assert len(sims) >= 60
            assert all(s.structure.symbols[s.absorber] == metal for s in sims)
            assert all(np.all(np.diff(s.spectrum.energy) > 0) for s in sims)


def test_docs_give_the_data_as_committed():
    """The counts in docs/feff_models.md's campaign paragraph and data/feff_extra/README.md are the data's own."""
    from xanesnet.data.dataset import heldout_mask

    shared = shared_data("feff_3d").parent
    totals, outside, extra = [], [], []
    for metal in FIRST_ROW_TM:
        data = load_feff(metal, "xanes", shared=shared)
        names = [s.structure.name for _, s in data.molecules()]
        totals.append(len(names))
        outside.append(int(np.sum(~heldout_mask(names))))
        extra.append(len(data.by_source["feff_extra"]))
    docs = " ".join((ROOT / "docs" / "feff_models.md").read_text().split())
    assert (f"`data/feff_extra` to {min(extra)}-{max(extra)} per metal ({sum(extra):,} in all): "
            f"{min(totals)}-{max(totals)} complexes per metal with the shared sets, {min(outside)}-{max(outside)} "
            "outside the held-out split") in docs
    readme = " ".join((EXTRA_DIR / "README.md").read_text().split())
    assert ("Molecules per metal at the last export: " + ", ".join(f"{m} {n}" for m, n in zip(FIRST_ROW_TM, extra))
            + f" ({sum(extra):,} in all") in readme


def test_shared_sets_are_merged_by_name_and_missing_ones_refused(tmp_path):
    shared = shared_data("feff_3d").parent
    data = load_feff("Cu", "xes", shared=shared)
    assert set(data.by_source) == {"feff_3d", "feff_3d_more", "feff_extra"}
    names = [s.structure.name for _, s in data.molecules()]
    assert len(names) == len(set(names)) >= 240
    only_3d, _ = read_feff_dir(shared / "feff_3d", "Cu", "xes")
    assert len(data.by_source["feff_3d"]) == len(only_3d)
    with pytest.raises(XanesnetError, match="no Cu directory in the shared FEFF set feff_3d"):
        load_feff("Cu", "xes", shared=tmp_path)



def test_xes_artifacts_are_the_spectra_far_above_their_metals_median_peak():
    from xanesnet.data.feff import xes_artifacts

    rng = np.random.default_rng(0)
    e = np.linspace(0.0, 40.0, 161)

    def molecule(name: str, peak: float) -> SimulatedSpectrum:
        line = peak * np.exp(-0.5 * ((e - 20.0) / 0.6) ** 2) + 0.1
        return SimulatedSpectrum(structure=zncl4(name), absorber=0, spectrum=Spectrum(name=name, energy=e, intensity=line))

    ordinary = [molecule(f"M{i:02d}", peak) for i, peak in enumerate(rng.uniform(0.5, 2.0, 30))]
    # 4x the median is an ordinary spread (Ti's largest is 4.3x); 40x is the artifact
    found = xes_artifacts([*ordinary, molecule("HIGH", 4.0 * 1.25), molecule("SPIKE", 40.0)], "Zn")
    assert list(found) == ["SPIKE"]
    median = np.median([m.spectrum.intensity.max() for m in ordinary] + [5.1, 40.1])
    assert found["SPIKE"].startswith(f"FEFF XES artifact: highest point 40.1, {40.1 / median:.0f}x the median {median:.3g} ")
    assert found["SPIKE"].endswith(f"of the Zn molecules (limit {XES_ARTIFACT_FACTOR:g}x)")
    assert xes_artifacts([], "Zn") == {}


@pytest.mark.parametrize("metal", FIRST_ROW_TM)
def test_xes_artifact_limit_sits_in_the_gap_of_the_real_data(metal):
    """Every kept XES's highest point is within 4.5x its metal's median and every left-out one above 12x (as
    docs/feff_models.md says): the limit of 10x does not cut into the data. Only V and Cr have artifacts."""
    shared = shared_data("feff_3d").parent
    data = load_feff(metal, "xes", shared=shared)
    peaks = np.array([s.spectrum.intensity.max() for _, s in data.molecules()])
    median = np.median(peaks)
    assert peaks.max() <= 4.5 * median
    left_out = [why for _, why in data.skipped if why.startswith("FEFF XES artifact")]
    assert all(float(why.split(", ")[1].split("x")[0]) > 12 for why in left_out)
    assert len(left_out) == {"V": 10, "Cr": 1}.get(metal, 0), "docs/feff_models.md gives these counts: update it"
    assert not any(why.startswith("FEFF XES artifact") for _, why in load_feff(metal, "xanes", shared=shared).skipped)


def test_campaign_summary_counts_finished_and_failed_molecules(tmp_path):
    h5 = simulation_file(tmp_path / "sim.h5", {"AAA": 1.0, "BBB": 2.0}, merged=True)
    failed = MoleculeResult(name="CCC", absorber=0, spectra={"xanes": fake_table(9660.0, 1.0)}, seconds={"xanes": 12.0},
                            error="/somewhere/CCC.xyz: FEFF XES run failed: stage 'pot' failed: timed out after 120s")
    write_part(h5, failed, zncl4("CCC"), source="CCC.xyz")  # still a part: the summary merges a private copy
    summary = campaign_summary(h5)
    assert summary == {"Zn": {"done": 2, "failed": {"FEFF XES run failed: stage 'pot' failed: timed out after 120s": 1},
                              "seconds": 12.0}}
    assert export(h5, tmp_path / "extra")["Zn"]["added"] == 2  # a failed molecule is not exported


def test_tmqm_archive_is_unpacked_once_and_atomically(tmp_path):
    """The tmQM locator the campaign and the benchmark share: unpacks into scratch/tmqm_3d once, refuses a missing archive."""
    import io
    import tarfile

    from xanesnet.data.feff import tmqm_dir

    archive = tmp_path / "tmqm_3d.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in (("tmqm_3d/index.tsv", "name\tmetal\nAAA\tZn\n"), ("tmqm_3d/Zn/AAA.xyz", "1\n\nZn 0 0 0\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    root = tmqm_dir(archive, tmp_path / "scratch")
    assert root == tmp_path / "scratch" / "tmqm_3d" and (root / "Zn" / "AAA.xyz").read_text() == "1\n\nZn 0 0 0\n"
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == ["tmqm_3d"]  # no temporary directory left
    archive.unlink()
    assert tmqm_dir(archive, tmp_path / "scratch") == root  # already there: the archive is not needed again
    with pytest.raises(XanesnetError, match="no such archive"):
        tmqm_dir(archive, tmp_path / "other")
