"""scripts/benchmark.py end to end with --size tiny into a temporary directory, so the script cannot rot.

Not a timing test: it checks that every section runs (or says why it was
skipped) and that the report, its JSON and the figures are written.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, SHARED_DATA


def test_benchmark_tiny_writes_report(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--size", "tiny", "--out", str(out),
                           "--work", str(work), "--data", str(SHARED_DATA)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "benchmarks.json").read_text())
    sections = results["sections"]
    assert set(sections) == {"featurize", "predict", "screen", "train", "theory", "smalltrain"}
    assert results["commit"] and all(sec["meta"]["commit"] for sec in sections.values())
    assert results["machine"]["nproc"] >= 1 and results["versions"]["torch"]
    report = (out / "benchmarks.md").read_text()
    assert "## Machine and versions" in report and "## Targets" in report

    if not (SHARED_DATA / "fe_k_fdmnes_sample").is_dir():  # no reference data: every data section says why it skipped
        assert "skipped" in sections["featurize"] and "Skipped:" in report
        return
    feat = sections["featurize"]
    assert feat["n_molecules"] == 12
    assert feat["ms_per_molecule"]["xanesnet wACSF xanesnet-2021, end to end"]["median"] > 0
    if "equivalence" in feat:  # dscribe installed: its weighted per-element sums reproduce our G1/G2 (and clipped G4)
        plain = feat["equivalence"]["plain"]["max_rel_diff"]
        assert max(plain.values()) < 1e-10
        assert feat["equivalence"]["xanesnet-2021"]["max_rel_diff"]["G2"] < 1e-10
    pred = sections["predict"]
    assert "error" not in pred, pred.get("error")
    assert pred["cold_start_s"]["xanesnet predict (1 molecule)"]["median"] > 0
    assert pred["cli_batch"]["returncode"] == 0 and pred["cli_batch"]["maxrss_mb"] > 0
    train = sections["train"]
    assert len(train["per_fold"]) == 2 and "ratios" in train and not train.get("partial")
    screen = sections["screen"]
    assert "error" not in screen, screen.get("error")
    if "library" in screen:  # the tmQM archive is here: every molecule of the small library is in the one file
        assert screen["present"] + screen["skipped_bad"] == screen["library"]["n_molecules"] == 12
        assert all(c["returncode"] == 0 and c["peak_pss_mb"] > 0 for c in screen["memory_curve"])
    assert screen["featurize_processes"]["ratio_dscribe_over_ours"]["median"] > 0
    small = sections["smalltrain"]
    assert set(small["runs"]) == {"data-size rules (default)", "previous fixed defaults"}
    assert small["runs"]["previous fixed defaults"][0]["training"]["batch_size"] == 64
    from xanesnet.config import TrainingSettings

    rules = small["runs"]["data-size rules (default)"][0]
    assert rules["training"]["batch_size"] == TrainingSettings().for_size(rules["n_train"]).batch_size
    assert "## 5. Training on a small data set" in report
    theory = sections["theory"]
    if "skipped" not in theory:
        assert theory["feff"]["Fe"]["xanes_s_median"] > 0
        assert (out / "benchmark_theory_vs_ml.png").stat().st_size > 0
    assert (out / "benchmark_featurize.png").stat().st_size > 0


def test_active_learning_script_scores_every_strategy(tmp_path):
    """scripts/active_learning.py at a tiny size: each strategy is retrained and reported against random."""
    import os

    from conftest import shared_data

    shared_data("fe_k_fdmnes_train.tar.gz")  # skips (or fails under CI) without the Fe data
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "active_learning.py"), "--start", "60", "--batch", "20",
                           "--seeds", "1", "--out", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    from xanesnet.uncertainty import SELECTION_STRATEGIES

    result = json.loads((out / "active_learning.json").read_text())
    (experiment,) = result["experiments"]
    assert experiment["start"] == 60 and set(experiment["results"]) == {"none", *SELECTION_STRATEGIES}
    for name, runs in experiment["results"].items():
        assert len(runs) == 1 and runs[0]["mse"] > 0
        if name != "none":
            assert 0 < runs[0]["picked_error"] and 0 <= runs[0]["picked_untrusted"] <= 1
            assert 0 <= runs[0]["picked_with_twin"] <= 1 and runs[0]["n_picked"] == 20
    report = (out / "active_learning.md").read_text()
    assert "## Start 60 labelled" in report and report.count("| 1.00x |") >= 1  # random is the reference


def test_readme_states_the_small_training_benchmark():
    """The README's numbers for default training on the 99-molecule sample are the benchmark's (docs/benchmarks.json)."""
    res = json.loads((ROOT / "docs" / "benchmarks.json").read_text())["sections"]["smalltrain"]
    readme = (ROOT / "README.md").read_text()
    new, old = "data-size rules (default)", "previous fixed defaults"
    for text in (f"{res['cli_wall_s_median']:.0f} s wall ({res['cli_cpu_s_median']:.0f} s of CPU) as a fresh process",
                 f"{res['wall_s_median'][new]:.0f} s wall ({res['cpu_s_median'][new]:.0f} s of CPU) against",
                 f"{res['wall_s_median'][old]:.0f} s wall ({res['cpu_s_median'][old]:.0f} s of CPU) with the former",
                 f"on {res['n_external']} unseen Fe complexes", f"the MSE is {res['external_mse'][new]:.3g}",
                 f"against {res['external_mse'][old]:.3g} (mean of the three seeds)"):
        assert text in readme, text
    assert len(res["seeds"]) == 3
