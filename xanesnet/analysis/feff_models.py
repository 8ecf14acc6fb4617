"""Tables of the shipped FEFF Ti-Zn models (``scripts/train_feff_models.py`` writes them; a test checks the README)."""

from __future__ import annotations

from xanesnet.data.feff import FEFF_SPECTRA
from xanesnet.io.structures import FIRST_ROW_TM


def readme_table(rows: list[dict]) -> str:
    """The README's table of the 18 models: one line per metal, XANES and XES side by side."""
    by = {(r["metal"], r["spectrum"]): r for r in rows}
    lines = ["| metal | XANES: model | n train / held-out | held-out MSE ratio | 5-fold CV ratio | XES: model | "
             "n train / held-out | held-out MSE ratio | 5-fold CV ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for metal in FIRST_ROW_TM:
        cells = [metal]
        for spectrum in FEFF_SPECTRA:
            r = by[(metal, spectrum)]
            cv = "-" if r.get("cv_ratio") is None else f"{r['cv_ratio']:.2f}"
            cells += [r["kind"].replace("_", "-"), f"{r['n_train']} / {r['n_heldout']}", f"{r['ratio']:.2f}", cv]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
