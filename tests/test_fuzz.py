"""Property-based fuzzing of the three reading layers: structures, spectra, model directories.

Every generated input must end in a result or a :class:`XanesnetError` (never another exception), within a
time limit; a result must be usable (finite descriptor vectors, finite processed spectra, finite predictions).

The budget is CI-sized by default (a few seconds per layer). A larger campaign, by hand::

    XANESNET_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py -q

``XANESNET_FUZZ_EXAMPLES`` is the number of inputs per test (default 40); ``XANESNET_FUZZ_SEED`` fixes
hypothesis's seed (default: derandomised, so CI runs are reproducible; set it to explore new inputs).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from xanesnet.errors import XanesnetError  # noqa: E402

EXAMPLES_PER_TEST = int(os.environ.get("XANESNET_FUZZ_EXAMPLES", "40"))
#: Seconds one input may take, reading and using it included: a guard against hangs and blow-ups, not a benchmark.
TIME_LIMIT = timedelta(seconds=20)
_SEED = os.environ.get("XANESNET_FUZZ_SEED")
FUZZ = settings(max_examples=EXAMPLES_PER_TEST, deadline=TIME_LIMIT, derandomize=_SEED is None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def fuzz(test):
    test = FUZZ(test)
    return seed(int(_SEED))(test) if _SEED is not None else test


# --------------------------------------------------------------------------- building blocks

WEIRD_NUMBERS = ["nan", "-nan", "inf", "-inf", "1e308", "1e400", "-1e400", "1e-320", "0", "-0", "+-1", "1e", ".", "",
                 "²", "٣", "1_000", "9" * 40, "0x10", "1,5", "abc", "T", "None", '"1 2"']
ELEMENTS = ["H", "C", "N", "O", "Fe", "Co", "Ni", "Zn", "Ti", "Cl", "S", "P", "X", "Xz", "fe", "FE", "26", "0", "-26",
            "+26", "999", "²⁶", "₆", "Uuo", "Og", "e"]


def number_token() -> st.SearchStrategy[str]:
    floats = st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr)
    sane = st.floats(-12.0, 12.0).map(lambda v: f"{v:.4f}")
    return st.one_of(sane, sane, sane, floats, st.sampled_from(WEIRD_NUMBERS), st.integers(-10**30, 10**30).map(str))


@st.composite
def xyz_text(draw) -> str:
    n = draw(st.integers(1, 12))
    rows = []
    for k in range(n):
        element = draw(st.sampled_from(ELEMENTS)) if k else draw(st.sampled_from(["Fe", "Co", "Ni", "26", *ELEMENTS]))
        coords = [draw(number_token()) for _ in range(draw(st.sampled_from([3, 3, 3, 2, 4])))]
        rows.append(" ".join([element, *coords]))
    count = draw(st.one_of(st.just(str(n)), st.just(str(n)), number_token(), st.integers(-3, 10**9).map(str)))
    fields = draw(st.lists(st.sampled_from([
        "Lattice=\"{a} 0 0 0 {b} 0 0 0 {c}\"", "Lattice=\"{a} {b} {c} 0 {a} 0 {c} 0 {b}\"", "Properties=species:S:1:pos:R:3",
        "pbc=\"T T T\"", "pbc=\"F F F\"", "pbc=\"T F T\"", "charge={q}", "spin={q}", "q = {q} | S = {s}", "CSD_code = X",
        "(2+)", "energy={q}"]), max_size=5))
    comment = " ".join(fields).format(a=draw(number_token()), b=draw(number_token()), c=draw(number_token()),
                                      q=draw(number_token()), s=draw(number_token()))
    text = f"{count}\n{comment}\n" + "\n".join(rows) + "\n"
    return text * draw(st.sampled_from([1, 1, 1, 2]))


@st.composite
def structure_file(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["xyz", "xyz", "xyz", "xyz", "bytes", "pdb", "sdf", "cif"]))
    if kind == "bytes":
        return ".xyz", draw(st.binary(max_size=300))
    if kind == "xyz":
        return ".xyz", draw(xyz_text()).encode()
    base = (EXAMPLES / "ferrocene.xyz").read_text().splitlines()[2:]
    lines = []
    for row in base[: draw(st.integers(1, len(base)))]:
        el, *xyz = row.split()
        xyz = [draw(number_token()) if draw(st.integers(0, 9)) == 0 else v for v in xyz]
        if kind == "pdb":
            lines.append(f"HETATM{len(lines) + 1:5d} {el:>2}   MOL A   1    {float(xyz[0]) if _ok(xyz[0]) else 0:8.3f}"
                         f"{float(xyz[1]) if _ok(xyz[1]) else 0:8.3f}{xyz[2][:8]:>8}  1.00  0.00          {el:>2}")
        else:
            lines.append(" ".join([el, *xyz]))
    if kind == "pdb":
        cell = draw(st.sampled_from(["", "CRYST1    1.000    1.000    1.000  90.00  90.00  90.00 P 1           1\n",
                                     f"CRYST1 {draw(number_token())[:8]:>8} 10.000 10.000  90.00  90.00  90.00 P 1\n"]))
        body = cell + "\n".join(lines) + "\nEND\n"
        return ".pdb", (body * draw(st.sampled_from([1, 1, 2]))).encode()
    if kind == "sdf":
        atoms = "\n".join(f"{l.split()[1]:>10} {l.split()[2]:>9} {l.split()[3]:>9} {l.split()[0]:<3} 0  0" for l in lines
                          if len(l.split()) >= 4)
        body = f"mol\n  x\n\n{len(lines):3d}  0  0  0  0  0  0  0  0  0999 V2000\n{atoms}\nM  END\n$$$$\n"
        return ".sdf", (body * draw(st.sampled_from([1, 1, 2]))).encode()
    a = draw(number_token())
    atoms = "\n".join(f"{l.split()[0]} {' '.join(l.split()[1:4])}" for l in lines)
    return ".cif", (f"data_x\n_cell_length_a {a}\n_cell_length_b 20\n_cell_length_c 20\n_cell_angle_alpha 90\n"
                    f"_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n_atom_site_type_symbol\n_atom_site_Cartn_x\n"
                    f"_atom_site_Cartn_y\n_atom_site_Cartn_z\n{atoms}\n").encode()


def _ok(token: str) -> bool:
    try:
        return abs(float(token)) < 1e4
    except ValueError:
        return False


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _fresh(scratch: Path, name: str) -> Path:
    path = scratch / name
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    return path


# --------------------------------------------------------------------------- structures


@fuzz
@given(case=structure_file())
def test_structure_reader_gives_a_usable_structure_or_one_error(scratch, case):
    from xanesnet.descriptors import preset
    from xanesnet.io.structures import read_structure

    suffix, data = case
    path = _fresh(scratch, f"s{suffix}")
    path.write_bytes(data)
    try:
        structure = read_structure(path)
        x = preset("default").featurize([structure])
    except XanesnetError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path)), str(exc)
        return
    assert np.all(np.isfinite(structure.positions)) and np.all(np.isfinite(x))


# --------------------------------------------------------------------------- spectra

HEADERS = ["", "# FEFF10 K-edge XANES\n# omega  e  k  mu  mu0  chi\n", "# FEFF10 K-edge XANES\n", "    FDMNES\n    energy  <xanes>\n",
           "  {e} 26 1 = E_edge, Z, n_edge\n  Energy  <xanes>\n", "# ORCA\nEnergy TotalSpectrum\n", "energy intensity\n",
           "# omega e k mu\n"]


@st.composite
def spectrum_text(draw) -> str:
    n = draw(st.integers(0, 40))
    ncol = draw(st.sampled_from([2, 2, 3, 6, 6, 1]))
    start = draw(st.sampled_from([7100.0, 0.0, -20.0, 1e5, 9e5]))
    step = draw(st.sampled_from([0.5, 1.0, 5.0, 1e-9, -1.0]))
    rows = []
    for k in range(n):
        values = [f"{start + k * step:.6f}", *(f"{np.sin(k / 3.0 + c) + 1.2:.5f}" for c in range(ncol - 1))]
        if ncol == 6:
            values[1] = f"{k * step - 12.0:.6f}"
        if draw(st.integers(0, 6)) == 0:
            values[draw(st.integers(0, ncol - 1))] = draw(number_token())
        rows.append(" ".join(values))
    header = draw(st.sampled_from(HEADERS)).format(e=draw(number_token()))
    return header + "\n".join(rows) + "\n"


PROCESSING = [None, {"grid": "absolute:7105:7115:11"}, {"grid": "relative:-5:10:16"},
              {"broadening": {"kind": "lorentzian", "width": 1.0, "extend": 5.0}, "grid": "absolute:7102:7120:19"},
              {"broadening": "arctangent", "normalisation": {"pre_edge": [-10, -2], "post_edge": [2, 10]}}]


@fuzz
@given(text=spectrum_text(), binary=st.binary(max_size=200), use_binary=st.integers(0, 9),
       settings_=st.sampled_from(PROCESSING), fmt=st.sampled_from([None, None, None, "feff", "two-column", "fdmnes-raw"]))
def test_spectrum_readers_give_a_usable_spectrum_or_one_error(scratch, text, binary, use_binary, settings_, fmt):
    from xanesnet.io.spectra import read_spectrum
    from xanesnet.spectra import process

    path = _fresh(scratch, "spectrum.dat")
    path.write_bytes(binary if use_binary == 0 else text.encode())
    try:
        spectrum = read_spectrum(path, fmt=fmt)
        out = process(spectrum, settings_) if settings_ is not None else spectrum
    except XanesnetError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    assert np.all(np.isfinite(out.energy)) and np.all(np.isfinite(out.intensity))


# --------------------------------------------------------------------------- model directories


@pytest.fixture(scope="module")
def fuzz_model(tmp_path_factory) -> Path:
    from xanesnet.config import Config, TrainingSettings
    from xanesnet.pipeline import TrainingSet, train_model

    rng = np.random.default_rng(0)
    data = TrainingSet(ids=[f"m{i}" for i in range(24)], x=rng.random((24, 9)), y=rng.random((24, 10)),
                       energy=np.linspace(7100.0, 7150.0, 10))
    config = Config(descriptor={"kind": "wacsf", "n_g2": 4, "n_g4": 4, "zetas": [1.0, 2.0], "r_max": 5.0},
                    model={"kind": "mlp", "hidden": [8], "dropout": 0.1}, seed=1,
                    training=TrainingSettings(epochs=2, patience=2, ensemble=2, batch_size=8, val_fraction=0.25))
    out = tmp_path_factory.mktemp("fuzzmodel") / "m"
    train_model(data, config, out, progress=False)
    return out


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**40, 10**40), st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=8), st.sampled_from([1, 0, -1, 10**9, 1e300, "1", "nan", "mlp", "standardize", "pca"])),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            yield from _paths(v, (*prefix, i))


@st.composite
def model_mutation(draw):
    return {"kind": draw(st.sampled_from(["value", "value", "value", "delete", "weights", "config_bytes"])),
            "where": draw(st.integers(0, 10**6)), "value": draw(JSON_VALUES), "restamp": draw(st.booleans()),
            "bytes": draw(st.binary(max_size=64)), "cut": draw(st.integers(0, 4000))}


@fuzz
@given(mutation=model_mutation())
def test_model_loader_gives_a_working_model_or_one_error(scratch, fuzz_model, mutation):
    from xanesnet.bundle import load_bundle, stamp
    from xanesnet.predict import Predictor

    model = _fresh(scratch, "model")
    shutil.copytree(fuzz_model, model)
    config = json.loads((model / "config.json").read_text())
    kind = mutation["kind"]
    if kind in ("value", "delete"):
        paths = [p for p in _paths(config) if p]
        path = paths[mutation["where"] % len(paths)]
        node = config
        for key in path[:-1]:
            node = node[key]
        if kind == "delete":
            del node[path[-1]]
        else:
            node[path[-1]] = mutation["value"]
        (model / "config.json").write_text(json.dumps(stamp(config) if mutation["restamp"] else config))
    elif kind == "weights":
        data = (model / "weights.pt").read_bytes()
        cut = mutation["cut"] % max(1, len(data))
        (model / "weights.pt").write_bytes(data[:cut] + mutation["bytes"] + data[cut + len(mutation["bytes"]):])
        if mutation["restamp"]:
            import hashlib

            config["weights_sha256"] = hashlib.sha256((model / "weights.pt").read_bytes()).hexdigest()
            (model / "config.json").write_text(json.dumps(stamp(config)))
    else:
        text = (model / "config.json").read_bytes()
        cut = mutation["cut"] % max(1, len(text))
        (model / "config.json").write_bytes(text[:cut] + mutation["bytes"])
    try:
        predictor = Predictor(load_bundle(model))
        pred = predictor.predict_features(np.random.default_rng(0).random((3, len(predictor.bundle.config["feature_names"]))))
    except XanesnetError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(model)), str(exc)
        return
    assert np.all(np.isfinite(pred.mean)) and np.all(np.isfinite(pred.std))
