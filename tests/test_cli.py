"""The command line end to end on a tiny data set, and the one-line error (exit 2) for each bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT

from xanesnet.cli import main

TINY_CONFIG = {
    "descriptor": {"kind": "wacsf", "n_g2": 8, "n_g4": 8, "zetas": [1.0, 2.0], "r_max": 5.0},
    "model": {"kind": "mlp", "hidden": [32], "activation": "silu", "dropout": 0.0},
    "training": {"epochs": 15, "patience": 5, "batch_size": 16, "ensemble": 2},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, request):
    """30 Fe complexes from the shared sample, with their spectra, and a config that trains in seconds."""
    from conftest import shared_data

    sample = shared_data("fe_k_fdmnes_sample")
    root = tmp_path_factory.mktemp("tiny")
    (root / "xyz").mkdir()
    (root / "xanes").mkdir()
    for p in sorted((sample / "xyz").glob("*.xyz"))[:30]:
        shutil.copy(p, root / "xyz" / p.name)
        shutil.copy(sample / "xanes" / f"{p.stem}.txt", root / "xanes" / f"{p.stem}.txt")
    (root / "config.json").write_text(json.dumps(TINY_CONFIG))
    return root


@pytest.fixture(scope="module")
def tiny_model(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    assert main(["train", "--xyz", str(tiny / "xyz"), "--spectra", str(tiny / "xanes"), "--out", str(out),
                 "--config", str(tiny / "config.json"), "--seed", "3", "--no-cache", "--no-progress"]) == 0
    return out


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_predict_evaluate_end_to_end(tiny, tiny_model, tmp_path, capsys):
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert cfg["seed"] == 3 and cfg["n_train"] == 30 and len(cfg["energy"]) == 226
    assert cfg["descriptor"]["n_g2"] == 8 and cfg["versions"]["xanesnet"]

    code, out, _ = run(["predict", "--model", str(tiny_model), str(tiny / "xyz"), "--out", str(tmp_path / "p"), "--no-progress"], capsys)
    assert code == 0 and "wrote 30 spectra" in out
    table = np.loadtxt(next((tmp_path / "p").glob("*.txt")))
    assert table.shape == (226, 3) and table[0, 0] == pytest.approx(7097.0)

    code, out, _ = run(["evaluate", "--model", str(tiny_model), "--xyz", str(tiny / "xyz"), "--spectra", str(tiny / "xanes"),
                        "--json", str(tmp_path / "m.json"), "--no-progress"], capsys)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert code == 0 and metrics["n"] == 30 and metrics["mse"] > 0
    assert set(metrics) == {"mse", "rse", "peak_position_error_ev_mean", "peak_position_error_ev_median",
                            "peak_intensity_error_pct_mean", "peak_intensity_error_pct_median", "n",
                            "coverage_1sigma", "coverage_2sigma", "sigma_error_spearman", "trusted_fraction",
                            "n_peaks", "splits", "unmatched"}
    assert 0 <= metrics["coverage_1sigma"] <= metrics["coverage_2sigma"] <= 1


def test_single_molecule_prints_a_summary(tiny_model, tmp_path, capsys):
    code, out, _ = run(["predict", "--model", str(tiny_model), str(EXAMPLES / "ferrocene.xyz"), "--out", str(tmp_path)], capsys)
    assert code == 0 and out.startswith("ferrocene: Fe XANES, E0 ") and "main peak" in out
    assert (tmp_path / "ferrocene.xanes.txt").is_file()


def test_featurize_writes_sorted_ids(tmp_path, capsys):
    out = tmp_path / "f.npz"
    code, _, _ = run(["featurize", str(EXAMPLES), "--preset", "xanesnet", "--out", str(out), "--no-progress"], capsys)
    data = np.load(out)
    assert code == 0 and data["x"].shape == (len(list(EXAMPLES.glob("*.xyz"))), 49)
    assert list(data["ids"]) == sorted(p.stem for p in EXAMPLES.glob("*.xyz"))
    assert json.loads(str(data["settings"]))["weight_scale"] == 0.1


def test_train_from_prebuilt_features(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 10))
    y = np.tanh(x[:, :3] @ rng.normal(size=(3, 20)))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    (tmp_path / "c.json").write_text(json.dumps({"model": TINY_CONFIG["model"], "training": TINY_CONFIG["training"]}))
    code, out, _ = run(["train", "--features", str(tmp_path / "d.npz"), "--out", str(tmp_path / "m"), "--config", str(tmp_path / "c.json"),
                        "--no-progress"], capsys)
    assert code == 0 and "trained on 60 spectra" in out


def test_unmatched_files_are_reported_by_name(tiny, tmp_path, capsys):
    xyz = tmp_path / "xyz"
    shutil.copytree(tiny / "xyz", xyz)
    shutil.copy(EXAMPLES / "ferrocene.xyz", xyz / "ferrocene.xyz")
    code, _, err = run(["train", "--xyz", str(xyz), "--spectra", str(tiny / "xanes"), "--out", str(tmp_path / "m"),
                        "--config", str(tiny / "config.json"), "--no-cache", "--no-progress"], capsys)
    assert code == 0 and "1 structures without a spectrum: ferrocene.xyz" in err


def test_console_script_runs(tiny_model, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xanesnet.cli", "predict", "--model", str(tiny_model),
                           str(EXAMPLES / "hexacyanoferrate.xyz"), "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("hexacyanoferrate: Fe XANES, E0 ")


# --- bad input: one line on stderr naming the file and the problem, exit code 2, nothing written ----------------

def _bad_xyz(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


BAD_STRUCTURES = {
    "empty.xyz": ("", "empty file"),
    "count.xyz": ("5\nx\nFe 0 0 0\nO 0 0 2\n", "line 1 says 5 atoms but 2 coordinate rows follow"),
    "text.xyz": ("2\nx\nFe 0 0 0\nO 0 0 two\n", "line 4: atom 2: non-numeric coordinate"),
    "nan.xyz": ("2\nx\nFe 0 0 0\nO 0 0 nan\n", "atom 2: coordinate is NaN or infinite"),
    "element.xyz": ("2\nx\nFe 0 0 0\nXz 0 0 2\n", "atom 2: unknown element 'Xz'"),
    "noabs.xyz": ("2\nx\nC 0 0 0\nO 0 0 1.2\n", "no first-row transition metal (Ti-Zn) to use as absorber"),
    "twoabs.xyz": ("3\nx\nFe 0 0 0\nFe 0 0 2.5\nO 0 2 0\n", "ambiguous absorber: 2 first-row transition metals"),
    "far.xyz": ("2\nx\nFe 0 0 0\nO 0 0 9\n", "absorber (atom 0) has no neighbour within r_max = 5.0 A"),
    "overlap.xyz": ("3\nx\nFe 0 0 0\nO 0 0 0.2\nO 0 0 2\n", "atoms 0 and 1 are 0.200 A apart (closer than 0.5 A): overlapping atoms"),
}


@pytest.mark.parametrize("name", sorted(BAD_STRUCTURES))
def test_predict_bad_structure(tiny_model, tmp_path, capsys, name):
    text, message = BAD_STRUCTURES[name]
    path = _bad_xyz(tmp_path, name, text)
    out_dir = tmp_path / "out"
    code, out, err = run(["predict", "--model", str(tiny_model), str(EXAMPLES / "ferrocene.xyz"), str(path), "--out", str(out_dir)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"xanesnet predict: error: {path}") and message in err
    assert not out_dir.exists()  # the good molecule was not written either: all or nothing


def test_skip_bad_reports_count_and_reasons(tiny_model, tmp_path, capsys):
    bad = _bad_xyz(tmp_path, "nan.xyz", BAD_STRUCTURES["nan.xyz"][0])
    code, out, err = run(["predict", "--model", str(tiny_model), str(EXAMPLES / "ferrocene.xyz"), str(bad), "--skip-bad",
                          "--out", str(tmp_path / "o")], capsys)
    assert code == 0 and "skipped 1 structure(s):" in err and "coordinate is NaN" in err
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["ferrocene.xanes.txt"]


def test_missing_input_file(tiny_model, tmp_path, capsys):
    code, _, err = run(["predict", "--model", str(tiny_model), str(tmp_path / "nope.xyz")], capsys)
    assert code == 2 and err == f"xanesnet predict: error: {tmp_path / 'nope.xyz'}: no such file or directory\n"


def test_missing_model_dir(tmp_path, capsys):
    code, _, err = run(["predict", "--model", str(tmp_path / "nomodel"), str(EXAMPLES / "ferrocene.xyz")], capsys)
    assert code == 2 and err == f"xanesnet predict: error: {tmp_path / 'nomodel'}: no such model directory\n"


def test_corrupted_model_via_cli(tiny_model, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "weights.pt").write_bytes(b"garbage")
    code, _, err = run(["predict", "--model", str(broken), str(EXAMPLES / "ferrocene.xyz"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "corrupted model: weights.pt does not match the checksum" in err
    assert not (tmp_path / "o").exists()


def _spectra_dir(tiny, tmp_path, name, edit):
    d = tmp_path / "spectra"
    shutil.copytree(tiny / "xanes", d)
    target = sorted(d.iterdir())[3]
    lines = target.read_text().splitlines()
    target.write_text("\n".join(edit(lines)) + "\n")
    return d, target


@pytest.mark.parametrize("case,edit,message", [
    ("nan", lambda L: L[:10] + [L[10].split()[0] + " nan"] + L[11:], ", line 11: column 2 is nan (NaN or infinite)"),
    ("order", lambda L: L[:10] + [L[11], L[10]] + L[12:], "energies are not strictly increasing (decreasing at point 10"),
    ("grid", lambda L: L[:-5], "energy grid differs from the first spectrum's (221 points"),
    ("empty", lambda L: L[:2], "empty spectrum: no numeric energy/intensity rows"),
])
def test_train_bad_spectrum(tiny, tmp_path, capsys, case, edit, message):
    spectra, target = _spectra_dir(tiny, tmp_path, case, edit)
    out = tmp_path / "model"
    code, _, err = run(["train", "--xyz", str(tiny / "xyz"), "--spectra", str(spectra), "--out", str(out), "--config",
                        str(tiny / "config.json"), "--no-cache", "--no-progress"], capsys)
    assert code == 2 and err.startswith(f"xanesnet train: error: {target}") and message in err
    assert not out.exists() and list(tmp_path.glob(".model*")) == []


def test_debug_shows_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xanesnet.cli", "predict", "--debug", "--model", str(tmp_path), str(tmp_path / "x.xyz")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_readme_commands_use_real_paths():
    """The README's example molecule and default model exist, so its first command works."""
    readme = (ROOT / "README.md").read_text()
    assert "data/examples/ferrocene.xyz" in readme
    assert (ROOT / "data" / "examples" / "ferrocene.xyz").is_file()


def test_relative_grid_model_round_trip(tiny, tmp_path, capsys):
    """Trained on a grid relative to the edge, the model predicts on that grid; --e0 puts it on the absolute scale."""
    out = tmp_path / "rel"
    code, _, err = run(["train", "--xyz", str(tiny / "xyz"), "--spectra", str(tiny / "xanes"), "--grid", "relative:-10:40:101",
                        "--out", str(out), "--config", str(tiny / "config.json"), "--no-cache", "--no-progress"], capsys)
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["spectra"]["grid"] == {"kind": "relative", "start": -10.0, "stop": 40.0, "n": 101}
    np.testing.assert_allclose(cfg["energy"], np.linspace(-10, 40, 101))
    code, _, _ = run(["predict", "--model", str(out), str(EXAMPLES / "ferrocene.xyz"), "--out", str(tmp_path / "p")], capsys)
    lines = (tmp_path / "p" / "ferrocene.xanes.txt").read_text().splitlines()
    assert code == 0 and "# energy_minus_E0_eV intensity std" in lines and "# energy_reference = relative to E0" in lines
    assert np.loadtxt(tmp_path / "p" / "ferrocene.xanes.txt")[0, 0] == -10.0
    code, _, _ = run(["predict", "--model", str(out), str(EXAMPLES / "ferrocene.xyz"), "--out", str(tmp_path / "q"), "--e0", "7125"], capsys)
    assert np.loadtxt(tmp_path / "q" / "ferrocene.xanes.txt")[0, 0] == 7115.0



def test_e0_with_an_absolute_model_aligns_its_e0(tiny_model, tmp_path, capsys):
    """An absolute model's energies are theory's: --e0 moves each prediction so that its E0 (Larch) is the one given."""
    code, out, err = run(["predict", "--model", str(tiny_model), str(EXAMPLES / "ferrocene.xyz"), "--out", str(tmp_path / "o"),
                          "--e0", "7125"], capsys)
    assert code == 0, err
    assert "E0 7125.00 eV (Larch)" in out
    energy = np.loadtxt(tmp_path / "o" / "ferrocene.xanes.txt")[:, 0]
    assert np.allclose(np.diff(energy), np.diff(json.loads((tiny_model / "config.json").read_text())["energy"]), atol=2e-4)


def _subcommand_options():
    from xanesnet.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        formatter = p._get_formatter()
        one_of = {a for g in p._mutually_exclusive_groups if g.required for a in g._group_actions}  # say what to give
        for action in p._actions:
            if action.dest not in ("help",):
                text = formatter._expand_help(action) if action.help else ""
                yield pytest.param(name, action, text, action in one_of,
                                   id=f"{name} {'/'.join(action.option_strings) or action.dest}")


@pytest.mark.parametrize("command,action,text,one_of", list(_subcommand_options()))
def test_every_option_has_help_listing_choices_and_default(command, action, text, one_of):
    """``xanesnet COMMAND --help`` explains every option: what it does, its choices, and what happens without it."""
    assert text.strip(), f"{command} {action.option_strings or action.dest}: no help text"
    for choice in action.choices or ():
        assert str(choice) in text, f"{command} {action.option_strings}: choice {choice} not in help"
    flag = action.nargs == 0  # store_true: off unless given
    if action.option_strings and not action.required and not flag and not one_of:
        assert "default" in text or "required with" in text, f"{command} {action.option_strings}: the help does not say the default"


def test_evaluate_reports_heldout_and_training_apart_and_lists_unmatched(tiny, tmp_path, capsys, caplog):
    """Molecules the model trained on are scored apart from the held-out ones (they read better); leftovers are named."""
    model = tmp_path / "m"
    code, _, err = run(["train", "--xyz", str(tiny / "xyz"), "--spectra", str(tiny / "xanes"), "--out", str(model),
                        "--config", str(tiny / "config.json"), "--seed", "1", "--holdout", "0.3", "--no-cache",
                        "--no-progress"], capsys)
    assert code == 0
    cfg = json.loads((model / "config.json").read_text())
    n_val = round(cfg["training"]["val_fraction"] * cfg["n_train"])  # 21 fitted: the data-size rule takes 25%
    assert n_val < 10 and f"calibrated on {n_val} validation spectra (fewer than 10): too few to trust them" in caplog.text
    held, trained = set(cfg["holdout"]["ids"]), set(cfg["training_ids"])
    assert held and trained and not held & trained and len(held | trained) == 30
    xyz = tmp_path / "xyz"
    shutil.copytree(tiny / "xyz", xyz)
    (xyz / "lonely.xyz").write_text((EXAMPLES / "ferrocene.xyz").read_text())
    code, out, err = run(["evaluate", "--model", str(model), "--xyz", str(xyz), "--spectra", str(tiny / "xanes"),
                          "--json", str(tmp_path / "e.json"), "--no-progress"], capsys)
    metrics = json.loads((tmp_path / "e.json").read_text())
    splits = metrics["splits"]
    assert code == 0 and set(splits) == {"heldout", "training"}
    assert (splits["heldout"]["n"], splits["training"]["n"]) == (len(held), len(trained))
    assert metrics["unmatched"] == {"structures_without_spectrum": ["lonely.xyz"], "spectra_without_structure": []}
    assert "unmatched files: 1 structures without a spectrum: lonely.xyz" in err
    assert f"  held-out: n {len(held)}, MSE {splits['heldout']['mse']:.4g}" in out
    assert f"  training (seen in training: optimistic): n {len(trained)}" in out


def test_enough_validation_spectra_do_not_warn(tiny, tmp_path, capsys, caplog):
    config = json.loads((tiny / "config.json").read_text())
    config["training"].update(val_fraction=0.35, epochs=2, ensemble=1)
    (tmp_path / "c.json").write_text(json.dumps(config))
    code, _, err = run(["train", "--xyz", str(tiny / "xyz"), "--spectra", str(tiny / "xanes"), "--out", str(tmp_path / "m"),
                        "--config", str(tmp_path / "c.json"), "--seed", "1", "--no-cache", "--no-progress"], capsys)
    assert code == 0 and "validation spectra" not in caplog.text  # 30 * 0.35 = 10.5 -> 10


def test_model_of_another_element_is_refused_unless_forced(tmp_path, capsys):
    copper = str(EXAMPLES / "tetraamminecopper.xyz")
    code, out, err = run(["predict", copper, "--model", str(ROOT / "models" / "fe-k-xanes"), "--out", str(tmp_path / "o")],
                         capsys)
    assert code == 2 and not (tmp_path / "o").exists()
    assert err == (f"xanesnet predict: error: {copper}: absorber is Cu but model fe-k-xanes is a Fe model: its spectrum "
                   "would be a Fe spectrum on Fe energies; use a Cu model (or --force)\n")
    code, out, err = run(["predict", copper, "--model", str(ROOT / "models" / "fe-k-xanes"), "--out", str(tmp_path / "o"),
                          "--force"], capsys)
    assert code == 0 and (tmp_path / "o" / "tetraamminecopper.xanes.txt").is_file()
    assert err.startswith("warning: --force: predicting Cu absorbers with the Fe model fe-k-xanes: the result is a Fe "
                          "spectrum on Fe energies, not a Cu spectrum")
