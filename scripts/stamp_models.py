"""Stamp saved model directories with the whole-model checksum (``model_sha256`` in config.json).

Models saved before the checksum covered the config carry only ``weights_sha256``. This checks each one
(weights against their checksum, every config value) and adds the checksum, changing nothing else:

    python scripts/stamp_models.py                 # every directory under models/
    python scripts/stamp_models.py path/to/model   # given directories
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xanesnet.io.files import write_bytes
from xanesnet.bundle import CHECKSUM_KEY, CONFIG_FILE, load_bundle, model_checksum, read_model_dir, stamp

ROOT = Path(__file__).resolve().parents[1]


def stamp_model(path: Path) -> bool:
    """Check the model at ``path`` and stamp it; True if its config.json changed."""
    config = json.loads((path / CONFIG_FILE).read_text())
    if config.get(CHECKSUM_KEY) == model_checksum(config):
        return False
    check = load_bundle if "feature_names" in config else (lambda p: read_model_dir(p, ()))  # spectrum or other models
    check(path)  # refuses a corrupted model (a stale checksum is refused too: remove it to restamp)
    write_bytes(path / CONFIG_FILE, json.dumps(stamp(config), indent=1).encode())
    check(path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="model directories (default: all under models/)")
    args = parser.parse_args(argv)
    models = args.models or sorted(p.parent for p in (ROOT / "models").glob(f"*/{CONFIG_FILE}"))
    for path in models:
        print(f"{path.name}: {'stamped' if stamp_model(path) else 'already stamped'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
