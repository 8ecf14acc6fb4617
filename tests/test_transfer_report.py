"""docs/transfer.md is in step with docs/transfer.json (both from scripts/transfer_fe.py, rendered by
xanesnet.analysis.transfer), and the curves are complete."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT

from xanesnet.analysis import transfer as transfer_fe


def test_report_tables_come_from_the_json():
    report = json.loads((ROOT / "docs" / "transfer.json").read_text())
    text = (ROOT / "docs" / "transfer.md").read_text()
    assert transfer_fe.MARKER in text
    assert text.split(transfer_fe.MARKER)[1] == transfer_fe.report_markdown(report).split(transfer_fe.MARKER)[1]


def test_curves_have_every_size_for_scratch_and_fine_tuned_with_three_seeds():
    report = json.loads((ROOT / "docs" / "transfer.json").read_text())
    curve = transfer_fe.curve(report)
    for arm in ("scratch", "finetuned"):
        assert sorted(curve[arm]) == [0, 250, 500, 1000, 2000]
        assert all(v["seeds"] == 3 for v in curve[arm].values())
    assert curve["scratch"][0]["n_train"] == report["fdmnes"]["pool"]


def test_equivalent_size_interpolates_the_scratch_curve():
    scratch = {100: {"n_train": 100, "mse": 4.0}, 400: {"n_train": 400, "mse": 1.0}}
    assert transfer_fe.equivalent_size(scratch, 2.0) == pytest.approx(200.0)  # halfway in log-log
    assert transfer_fe.equivalent_size(scratch, 0.5) is None


def test_fixed_splits_order_lists_validation_then_the_fit_pool():
    """The seeded order of the non-held-out molecules that learning curves take subsets from: validation first."""
    import numpy as np

    from xanesnet.experiments import fixed_splits

    ids = [f"MOL{i:04d}" for i in range(500)]
    s = fixed_splits(ids, val_fraction=0.2, seed=7)
    n_val = int(s.validation.sum())
    assert sorted(s.order) == sorted(np.flatnonzero(~s.test)) and n_val == round(0.2 * (~s.test).sum())
    assert set(s.order[:n_val]) == set(np.flatnonzero(s.validation))
    assert set(s.order[n_val:]) == set(np.flatnonzero(s.fit))
    again = fixed_splits(list(reversed(ids)), val_fraction=0.2, seed=7)  # masks follow names, not positions
    assert np.array_equal(again.test[::-1], s.test)
    assert not np.array_equal(fixed_splits(ids, val_fraction=0.2, seed=8).order, s.order)
