"""``xanesnet`` command line: a thin front end over :mod:`xanesnet.pipeline`.

Only this module prints. Bad input ends with one line on stderr and exit code
2 (``--debug`` shows the traceback); heavy libraries load only for the
subcommand that needs them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from xanesnet import __version__
from xanesnet.errors import XanesnetError
from xanesnet.resources import models_dir

EXIT_BAD_INPUT = 2
MODELS_DIR = models_dir()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args) or 0
    except XanesnetError as exc:
        if args.debug:
            raise
        print(f"xanesnet {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("xanesnet: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file-system failure no layer turned into a XanesnetError
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"xanesnet {args.command}: error: {where}{exc.strerror or type(exc).__name__}", file=sys.stderr)
        return EXIT_BAD_INPUT


def run() -> None:
    """Console entry point: :func:`main`, then a fast exit.

    Tearing down an interpreter that has loaded torch takes most of a second;
    once the command has finished and its output is flushed there is nothing
    left to clean up (files are written via temporary names and renamed), so
    the process ends at once.
    """
    import signal

    from xanesnet.parallel import keep_freed_heap

    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds: temporary files are removed, worker processes ended

    keep_freed_heap()

    signal.signal(signal.SIGTERM, terminated)
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    if "torch" in sys.modules:
        os._exit(code)
    sys.exit(code)


ABSORBER_HELP = "absorbing atom: 0-based index or element symbol (default: the one Ti-Zn metal)"
SKIP_BAD_HELP = "skip unreadable structures and report them (default: stop at the first)"
SPECTRUM_HELP = "which spectrum, xanes or xes: selects the shipped model (default: %(default)s)"
FORCE_HELP = "predict with --model even when its element is not the absorber's (default: refuse)"
MC_HELP = "Monte-Carlo dropout draws per ensemble member (models trained with dropout) (default: none for an ensemble)"


def build_parser() -> argparse.ArgumentParser:
    from xanesnet.descriptors.wacsf import PRESETS
    from xanesnet.io.spectra import SPECTRUM_FORMATS
    from xanesnet.spectra.broadening import BROADENING_KINDS, BROADENING_PRESETS
    from xanesnet.uncertainty import SELECTION_STRATEGIES

    format_help = "spectrum file format: " + ", ".join(SPECTRUM_FORMATS) + " (default: told from the content)"
    parser = argparse.ArgumentParser(prog="xanesnet", description="X-ray spectra of transition-metal complexes from geometry.")
    parser.add_argument("--version", action="version", version=f"xanesnet {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    common.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("featurize", parents=[common], help="descriptor vectors of structures, to .npz")
    p.add_argument("paths", nargs="+", help="structure files or directories of .xyz files")
    _descriptor_args(p)
    p.add_argument("--absorber", help=ABSORBER_HELP)
    p.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    p.add_argument("--spectra", metavar="DIR", help="also store the spectra paired by file name as y and energy, ready for "
                                                    "'xanesnet train --features' (default: features only)")
    p.add_argument("--format", dest="spectrum_format", metavar="FORMAT", help=format_help)
    p.add_argument("--out", required=True, help="output .npz (arrays ids, x, feature_names, settings; y, energy with --spectra)")
    p.set_defaults(func=cmd_featurize)

    p = sub.add_parser("train", parents=[common], help="train a model on structures + spectra or prebuilt features")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--xyz", help="directory of structure files (paired with spectra by file name)")
    src.add_argument("--features", help=".npz with arrays x, y (and optional energy, ids)")
    src.add_argument("--dataset", help="HDF5 data set written by 'xanesnet simulate'")
    p.add_argument("--spectra", help="directory of spectra, paired with the structures by file name (required with --xyz)")
    p.add_argument("--target", default="xanes", choices=["xanes", "xes"],
                   help="what the spectra are, xanes or xes (with --dataset: which of them to learn); saved with the model "
                        "(default: %(default)s)")
    p.add_argument("--element", nargs="+", metavar="EL", help="with --dataset: only absorbers of these elements, e.g. Fe (default: all)")
    p.add_argument("--broaden", metavar="KIND", help="broaden raw spectra: a preset (" + ", ".join(BROADENING_PRESETS) + ") or a kind ("
                   + ", ".join(BROADENING_KINDS) + ") with its default widths (default: none, spectra used as read)")
    p.add_argument("--grid", help="common energy grid: absolute:EMIN:EMAX:N or relative:EMIN:EMAX:N (relative to the edge E0) "
                                  "(default: none, the spectra must share one grid)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--config", help="JSON config (sections descriptor, model, training, spectra, seed) (default: built-in settings)")
    p.add_argument("--init-from", metavar="MODEL_DIR",
                   help="start from this model's weights (fine-tuning; its descriptor, model and target transform "
                        "unless --config gives them, and they must match); member i starts from its member i mod n "
                        "(default: random initialisation)")
    p.add_argument("--preset", help="descriptor preset: " + ", ".join(PRESETS) + " (default: default; "
                   "xanesnet and xanesnet-2021 reproduce the published tools)")
    p.add_argument("--model", dest="model_kind", choices=_model_kinds(),
                   help="model kind: mlp, gpr (the Gaussian-process baseline, one member unless --ensemble) or gnn "
                        "(a graph network on the absorber's environment) (default: mlp)")
    p.add_argument("--seed", type=int, help="one seed for everything (default: drawn, logged and saved with the model)")
    p.add_argument("--ensemble", type=int, help="number of ensemble members (default: 5; 1 for gpr)")
    p.add_argument("--bootstrap", action="store_true", help="bootstrap-resample each member's training set (default: off)")
    p.add_argument("--epochs", type=int, help="maximum epochs; early stopping usually ends sooner (default: 1000)")
    p.add_argument("--holdout", type=float, default=0.0,
                   help="hold out this share by name hash and report metrics on it (default: %(default)s, none)")
    p.add_argument("--float16", action="store_true",
                   help="store the weights as float16 (half the size) if that moves no validation prediction by 1e-3 of its RMS")
    p.add_argument("--absorber", help=ABSORBER_HELP)
    p.add_argument("--format", dest="spectrum_format", metavar="FORMAT", help=format_help)
    p.add_argument("--cache", help="feature cache file (default: $XANESNET_CACHE or ~/.cache/xanesnet/features.h5)")
    p.add_argument("--no-cache", action="store_true", help="do not cache features (default: cache them)")
    p.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    p.add_argument("--inverse", action="store_true",
                   help="train the inverse model (spectrum -> first coordination shell) for 'xanesnet invert' (with --xyz)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", parents=[common], help="predict spectra of structures")
    p.add_argument("paths", nargs="*", help="structure files or directories of .xyz files")
    p.add_argument("--features", metavar="NPZ", help="predict from descriptor vectors instead (arrays ids, x, as 'xanesnet "
                                                     "featurize' writes them; needs --model) (default: from the structures)")
    p.add_argument("--model", help="model directory (default: the shipped model for the absorber's element)")
    p.add_argument("--spectrum", nargs="+", default=["xanes"], choices=["xanes", "xes", "both"],
                   help="which spectrum, xanes, xes or both: selects the shipped model; several (or both) in one pass need "
                        "--out FILE.h5 (default: xanes)")
    p.add_argument("--absorber", help=ABSORBER_HELP + "; an element that occurs several times gives the average over those sites")
    p.add_argument("--out", default=".", help="directory for NAME.KIND.txt files (energy, intensity, std), or FILE.h5: one "
                                              "HDF5 file for the whole library (chunked, resumable; see README) (default: .)")
    p.add_argument("--workers", type=int, default=1, help="with --out FILE.h5: parallel processes on this machine "
                                                          "(default: %(default)s)")
    p.add_argument("--scheduler", help="with --out FILE.h5: Dask scheduler address: run on that cluster instead "
                                       "(pip install xanesnet[cluster]) (default: none, run here)")
    p.add_argument("--chunk-size", type=int, default=1024, help="with --out FILE.h5: molecules per chunk (default %(default)s)")
    p.add_argument("--json", help="also write all predictions to this JSON file (default: none)")
    p.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--plot", action="store_true",
                   help="also draw NAME.png (prediction with its +-2 sigma band) next to each NAME.txt (default: off)")
    p.add_argument("--mc-samples", type=int, help=MC_HELP)
    p.add_argument("--format", default="txt", choices=["txt", "xdi"],
                   help="txt: NAME.KIND.txt with a commented header; xdi: NAME.KIND.xdi, XDI 1.0 as Larch and Athena read it "
                        "(default: %(default)s)")
    p.add_argument("--e0", type=float,
                   help="XANES: align each prediction's E0 (Larch pre_edge convention) to this energy in eV, e.g. a measured "
                        "spectrum's, shifting everything written and printed; a relative-grid model's energies are put on the "
                        "absolute scale (default: none, the model's own energy scale)")
    p.add_argument("--reference", metavar="DIR",
                   help="with --plot: reference spectra paired by file name, drawn for comparison (default: none)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("select", parents=[common],
                       help="rank candidate structures by how unsure the model is: what to simulate next")
    p.add_argument("paths", nargs="+", help="candidate structure files or directories of .xyz files")
    p.add_argument("-n", type=int, default=50, help="how many to select (default: %(default)s)")
    p.add_argument("--model", help="model directory (default: the shipped model for the absorber's element)")
    p.add_argument("--spectrum", default="xanes", choices=["xanes", "xes"], help=SPECTRUM_HELP)
    p.add_argument("--absorber", help=ABSORBER_HELP + "; an element that occurs several times gives the average over those sites")
    p.add_argument("--out", default="selection.tsv", help="table of the selected structures, most informative first "
                                                          "(default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--mc-samples", type=int, help=MC_HELP)
    p.add_argument("--strategy", default="diverse",
                   help="one of " + ", ".join(SELECTION_STRATEGIES) + ". diverse: uncertain and unlike each other; uncertainty: the N least certain; random: a random draw "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the diverse (k-means) and random picks (default: %(default)s)")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("match", parents=[common], help="rank candidate structures against a measured spectrum")
    p.add_argument("measured", metavar="SPECTRUM", help="the measured spectrum (any format xanesnet reads)")
    p.add_argument("--candidates", dest="paths", required=True, nargs="+", metavar="DIR",
                   help="candidate structure files or directories")
    p.add_argument("--model", help="forward model directory (default: the shipped model for the candidates' absorber element)")
    p.add_argument("--absorber", help="absorbing atom: 0-based index or element symbol (default: the one Ti-Zn metal)")
    p.add_argument("--format", dest="spectrum_format", help="spectrum file format (default: detect)")
    p.add_argument("--window", type=float, default=5.0, help="search energy shifts within +-this many eV (default 5)")
    p.add_argument("--out", default="ranking.tsv", help="ranking table (default ranking.tsv)")
    p.add_argument("--plot", action="store_true", help="also draw OUT.png: the spectrum and the top three candidates, shifted, with bands")
    p.set_defaults(func=cmd_match, spectrum="xanes", skip_bad=False)

    p = sub.add_parser("invert", parents=[common], help="first coordination shell of the absorber from spectra")
    p.add_argument("spectra", nargs="+", help="spectrum files (any format xanesnet reads)")
    p.add_argument("--element", help="absorber element: selects the shipped inverse model (or pass --model) (default: none)")
    p.add_argument("--model", help="inverse model directory (from 'xanesnet train --inverse') (default: the shipped one of "
                                   "--element)")
    p.add_argument("--format", dest="spectrum_format", help="spectrum file format (default: detect)")
    p.add_argument("--out", default="results.tsv", help="results table (default results.tsv)")
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("simulate", parents=[common], help="reference XANES/XES from geometry with FEFF10 (resumable HDF5)")
    p.add_argument("paths", nargs="+", help="structure files or directories of .xyz files")
    p.add_argument("--spectrum", default="xanes", choices=["xanes", "xes", "both"],
                   help="which spectra to compute: xanes, xes (K-beta, reusing the XANES potentials) or both "
                        "(default: %(default)s)")
    p.add_argument("--out", required=True, help="HDF5 data set to create or extend (re-running skips what is done)")
    p.add_argument("--workers", type=int, default=1, help="parallel FEFF runs on this machine (default: %(default)s)")
    p.add_argument("--scheduler", help="Dask scheduler address: run on that cluster instead (pip install xanesnet[cluster]) "
                                       "(default: none, run here)")
    p.add_argument("--timeout", type=float, help="seconds one FEFF stage may take before the molecule is recorded as failed "
                                                 "(default: no limit)")
    p.add_argument("--absorber", help=ABSORBER_HELP)
    p.add_argument("--retry-failed", action="store_true", help="run again the molecules recorded as failed (default: skip them)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("evaluate", parents=[common], help="accuracy of a model on structures + reference spectra")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--xyz", help="directory of structure files, paired with spectra by file name (required with --spectra, "
                                 "unless --features)")
    p.add_argument("--spectra", help="directory of reference spectra (" + ", ".join(SPECTRUM_FORMATS) + ") "
                                     "(required with --xyz)")
    p.add_argument("--features", metavar="NPZ", help="descriptor vectors and reference spectra instead (arrays ids, x, y, "
                                                     "energy; 'xanesnet featurize --spectra' writes them) (default: none)")
    p.add_argument("--heldout", action="store_true", help="only the model's held-out molecules (default: all, reported apart)")
    p.add_argument("--absorber", help=ABSORBER_HELP + " (default: the model's)")
    p.add_argument("--format", dest="spectrum_format", metavar="FORMAT", help=format_help)
    p.add_argument("--json", help="write the metrics to this JSON file (default: none)")
    p.add_argument("--mc-samples", type=int, help=MC_HELP)
    p.add_argument("--plot", metavar="DIR", help="write DIR/evaluation.png and .svg: best, median, worst spectra and the error "
                                                 "histogram (default: none)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("normalize", parents=[common],
                       help="normalise XANES spectra as Larch's pre_edge does (E0, edge step, pre- and post-edge lines)")
    p.add_argument("paths", nargs="+", help="spectrum files (" + ", ".join(SPECTRUM_FORMATS) + ")")
    p.add_argument("--out", default=".", help="directory for NAME.norm.txt or NAME.norm.xdi (default: %(default)s)")
    p.add_argument("--format", default="txt", choices=["txt", "xdi"],
                   help="txt: energy and normalised columns with a commented header; xdi: XDI 1.0 (default: %(default)s)")
    p.add_argument("--spectrum-format", metavar="FORMAT", help=format_help)
    p.add_argument("--e0", type=float, help="E0 in eV (default: found as Larch's find_e0 does)")
    for name, what in (("pre1", "start of the pre-edge line fit"), ("pre2", "end of the pre-edge line fit"),
                       ("norm1", "start of the post-edge fit"), ("norm2", "end of the post-edge fit")):
        p.add_argument(f"--{name}", type=float, help=f"{what}, eV from E0 (default: Larch's)")
    p.add_argument("--nnorm", type=int, choices=[0, 1, 2, 3], help="degree of the post-edge polynomial: 0, 1, 2 or 3 "
                                                                   "(default: Larch's, by the post-edge length)")
    p.set_defaults(func=cmd_normalize)

    p = sub.add_parser("importance", parents=[common],
                       help="permutation importance of descriptor features per spectral window (CSV, JSON, figures)")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--xyz", required=True, help="directory of structure files")
    p.add_argument("--spectra", help="reference spectra paired by file name (default: the model's own prediction, i.e. sensitivity)")
    p.add_argument("--windows", nargs="+", metavar="NAME:EMIN:EMAX",
                   help="energy windows in eV (default: edge and post-edge, split at the mean main-peak energy)")
    p.add_argument("--groups", nargs="+", metavar="GROUP", help="feature groups to score (default: all; see importance_groups.csv)")
    p.add_argument("--repeats", type=int, default=5, help="shuffles per feature or group (default 5)")
    p.add_argument("--seed", type=int, help="seed of every shuffle and of --max-samples (default: drawn, and saved in importance.json)")
    p.add_argument("--max-samples", type=int, help="use this many molecules, drawn with the seed (default: all)")
    p.add_argument("--heldout", action="store_true", help="only the model's held-out molecules (default: all)")
    p.add_argument("--absorber", help=ABSORBER_HELP + " (default: the model's)")
    p.add_argument("--format", dest="spectrum_format", metavar="FORMAT", help=format_help)
    p.add_argument("--cache", help="feature cache file (default: $XANESNET_CACHE or ~/.cache/xanesnet/features.h5)")
    p.add_argument("--no-cache", action="store_true", help="do not cache features (default: cache them)")
    p.add_argument("--out", required=True, help="directory for importance_{features,groups}.csv, importance.json, importance.png/.svg")
    p.set_defaults(func=cmd_importance)
    return parser


def _model_kinds() -> list[str]:
    """The registered model kinds (importing the registry only when a parser is built)."""
    from xanesnet.models import MODELS

    return list(MODELS)


def _descriptor_args(p: argparse.ArgumentParser) -> None:
    from xanesnet.descriptors.wacsf import PRESETS

    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", default=None,
                   help="descriptor preset: " + ", ".join(PRESETS) + " (default: default; xanesnet and xanesnet-2021 "
                        "reproduce the published tools' vectors)")
    g.add_argument("--config", help="JSON file with descriptor settings (or a full training config) (default: the preset)")


def _descriptor_settings(args: argparse.Namespace) -> dict:
    from xanesnet.config import load_config
    from xanesnet.descriptors import preset

    if getattr(args, "config", None):
        raw = json.loads(Path(args.config).read_text()) if Path(args.config).is_file() else None
        if raw is not None and "kind" in raw:
            from xanesnet.descriptors import descriptor_from_dict

            return descriptor_from_dict(raw).to_dict()
        return load_config(args.config).descriptor.to_dict()
    return preset(args.preset or "default").to_dict()


def _check_outputs(*paths: str | None) -> None:
    """Refuse an output location that cannot be written before any work is done."""
    from xanesnet.io.files import check_writable

    for path in paths:
        if path is not None:
            check_writable(path)


def cmd_featurize(args: argparse.Namespace) -> int:
    from xanesnet.pipeline import featurize_to_npz

    _check_outputs(args.out)
    feats = featurize_to_npz(args.paths, _descriptor_settings(args), args.out, absorber=args.absorber,
                             skip_bad=args.skip_bad, progress=not args.no_progress, spectra=args.spectra,
                             spectrum_format=args.spectrum_format)
    _report_skipped(feats.skipped)
    print(f"wrote {len(feats.ids)} x {feats.x.shape[1]} features to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from xanesnet.config import Config, descriptor_settings, load_config
    from xanesnet.descriptors import preset
    from xanesnet.data.sources import build_training_set, load_feature_file
    from xanesnet.pipeline import train_model

    _check_outputs(args.out)
    config = load_config(args.config) if args.config else Config()
    init = None
    if args.init_from:
        from xanesnet.warmstart import WarmStart

        init = WarmStart.load(args.init_from)
        if not args.config:
            init.adopt(config)
    if args.model_kind and args.model_kind != config.model.kind:
        # another kind: its default settings, and its inputs' default descriptor unless the config or --preset names one
        raw = json.loads(Path(args.config).read_text()) if args.config else {}
        config = Config.from_dict({**raw, "model": {"kind": args.model_kind}})
        if args.model_kind == "gpr" and args.ensemble is None:
            config.training.ensemble = 1  # a GP fit is deterministic: identical members add nothing
    if args.preset:
        config = Config.from_dict({**config.to_dict(), "descriptor": preset(args.preset).to_dict()})
    if args.seed is not None:
        config.seed = args.seed
    for flag, name in ((args.ensemble, "ensemble"), (args.epochs, "epochs")):
        if flag is not None:
            setattr(config.training, name, flag)
    if args.bootstrap:
        config.training.bootstrap = True
    config.training.validate()
    if args.broaden or args.grid:
        spectra = config.spectra.to_dict() if config.spectra is not None else {}
        if args.broaden:
            spectra["broadening"] = args.broaden
        if args.grid:
            spectra["grid"] = args.grid
        config = Config.from_dict({**config.to_dict(), "spectra": spectra})
    if args.inverse:
        return _train_inverse(args, config)
    if args.features:
        data = load_feature_file(args.features)  # its descriptor settings (if any) are the model's
        config.descriptor = descriptor_settings(data.descriptor or None, model=config.model)  # from `xanesnet featurize`
    if init is not None:
        init.check(config)  # before the structures are read
    if args.features:
        pass  # read above
    elif args.dataset:
        from xanesnet.data.sources import build_training_set_from_simulations

        data = build_training_set_from_simulations(args.dataset, config, target=args.target, absorber=args.absorber,
                                                   elements=args.element, skip_bad=args.skip_bad, progress=not args.no_progress)
        _report_skipped(data.skipped)
    else:
        if not args.spectra:
            raise XanesnetError("--xyz needs --spectra DIR")
        from xanesnet.data.dataset import default_cache_path

        cache = None if args.no_cache else (args.cache or default_cache_path())
        data = build_training_set(args.xyz, args.spectra, config, absorber=args.absorber, spectrum_format=args.spectrum_format,
                                  cache=cache, skip_bad=args.skip_bad, progress=not args.no_progress)
        if data.pairing and (data.pairing.structures_only or data.pairing.spectra_only):
            print(data.pairing.report(), file=sys.stderr)
        _report_skipped(data.skipped)
    saved = train_model(data, config, args.out, holdout=args.holdout, absorber=args.absorber, init=init,
                        weights_dtype="float16" if args.float16 else "float32", progress=not args.no_progress,
                        metadata={"spectrum": args.target})
    print(f"trained on {saved['n_train']} spectra ({len(data.energy)} points) in {saved['training_seconds']:.1f} s, "
          f"seed {saved['seed']}; saved to {args.out}")
    if "holdout_metrics" in saved:
        m = saved["holdout_metrics"]
        print(f"held-out ({m['n']}): MSE {m['mse']:.3g}, RSE {m['rse']:.3g}, "
              f"main peak {m['peak_position_error_ev_mean']:.2f} eV / {m['peak_intensity_error_pct_mean']:.1f}% (mean)")
    return 0


def _train_inverse(args: argparse.Namespace, config) -> int:
    """``train --inverse``: the spectrum -> first-shell model (model and training settings from the config and flags)."""
    from xanesnet.inverse import INVERSE_MODEL_SETTINGS, InverseInput, build_inverse_set, train_inverse

    if not (args.xyz and args.spectra):
        raise XanesnetError("--inverse needs --xyz DIR and --spectra DIR")
    if not args.config and args.model_kind is None:
        config.model = dict(INVERSE_MODEL_SETTINGS)
    inputs = InverseInput()
    data = build_inverse_set(args.xyz, args.spectra, inputs, absorber=args.absorber, spectrum_format=args.spectrum_format,
                             skip_bad=args.skip_bad, progress=not args.no_progress)
    _report_skipped(data.skipped)
    saved = train_inverse(data, inputs, args.out, config=config, holdout=args.holdout, absorber=args.absorber,
                          weights_dtype="float16" if args.float16 else "float32", progress=not args.no_progress)
    print(f"trained the inverse model on {saved['n_train']} spectra in {saved['training_seconds']:.1f} s, seed {saved['seed']}; "
          f"saved to {args.out}")
    return 0


def default_model(element: str, spectrum: str, *, path: str | os.PathLike | None = None) -> Path:
    """The shipped model for an absorber element and spectrum kind (FDMNES-trained first, then FEFF-trained).

    ``path`` (the molecule's file) is named in the error when there is no such model.
    """
    from xanesnet.io.structures import FIRST_ROW_TM

    for name in (f"{element.lower()}-k-{spectrum}", f"{element.lower()}-k-{spectrum}-feff"):
        if (MODELS_DIR / name / "config.json").is_file():
            return MODELS_DIR / name
    where = "xanesnet ships Ti-Zn" if element not in FIRST_ROW_TM else f"none in {MODELS_DIR}"
    raise XanesnetError(f"no shipped {spectrum.upper()} model for {element}: {where}; pass --model DIR", path=path)


def cmd_predict(args: argparse.Namespace) -> int:
    from xanesnet.io.results import is_results_path

    spectra = ["xanes", "xes"] if "both" in args.spectrum else list(dict.fromkeys(args.spectrum))
    if is_results_path(args.out):
        return _predict_library(args, spectra)
    if len(spectra) > 1:
        raise XanesnetError("several spectra in one pass need one HDF5 output: --out FILE.h5")
    if args.workers != 1 or args.scheduler:
        raise XanesnetError("--workers and --scheduler write one HDF5 file: --out FILE.h5")
    args.spectrum = spectra[0]
    if args.reference and not args.plot:
        raise XanesnetError("--reference needs --plot")
    _check_outputs(args.out, args.json)
    if args.features:
        return _predict_features(args)
    if not args.paths:
        raise XanesnetError("give structure files (or --features X.npz with --model)")
    return _write_predictions(args, *_predict_files(args))


def _predict_files(args: argparse.Namespace) -> tuple[list, list]:
    from xanesnet.predict import Predictor

    groups = _model_groups(args)
    predictions, skipped = [], []
    for model, group in groups.items():
        predictor = Predictor.from_bundle(model)
        pred, skip = predictor.predict_files(group, absorber=args.absorber, skip_bad=args.skip_bad,
                                             progress=not args.no_progress and len(group) > 50, mc_samples=args.mc_samples)
        predictions.append((model, pred))
        skipped += skip
    return predictions, skipped


def _predict_features(args: argparse.Namespace) -> int:
    """``predict --features``: spectra from descriptor vectors made elsewhere, for models trained on such vectors."""
    from xanesnet.data.sources import load_feature_file
    from xanesnet.predict import Predictor

    if not args.model:
        raise XanesnetError("--features needs --model: vectors do not say which element they describe")
    if args.paths:
        raise XanesnetError("give structure files or --features, not both")
    predictor = Predictor.from_bundle(args.model)
    feats = load_feature_file(args.features, need_y=False)
    names = predictor.bundle.config["feature_names"]
    if feats.feature_names is not None and feats.feature_names != names:
        raise XanesnetError(f"the features ({len(feats.feature_names)}, {feats.feature_names[0]}, ...) are not the ones "
                            f"model {Path(args.model).name} was trained on ({len(names)}, {names[0]}, ...)", path=args.features)
    pred = predictor.predict_features(feats.x, ids=feats.ids, mc_samples=args.mc_samples)
    return _write_predictions(args, [(Path(args.model), pred)], [])


def _write_predictions(args: argparse.Namespace, predictions: list, skipped: list) -> int:
    from xanesnet.predict import prediction_records, trust_verdict, write_spectra

    _report_skipped(skipped)
    records = [rec for _, pred in predictions for rec in prediction_records(pred, e0=args.e0)]
    if args.json:
        from xanesnet.atomic import write_json

        write_json(args.json, {rec["name"]: {"model": str(model), **rec}
                               for model, pred in predictions for rec in records if rec["name"] in pred.ids})
    n_written = sum(len(write_spectra(pred, args.out, e0=args.e0, fmt=args.format)) for _, pred in predictions)
    for model, pred in predictions:
        for line in pred.warnings():
            print(f"warning: {line}", file=sys.stderr)
    if args.plot:
        from xanesnet.analysis.plots import plot_predictions

        missing = []
        for model, pred in predictions:
            missing += plot_predictions(pred, args.out, reference_dir=args.reference, e0=args.e0)[1]
        if missing:
            print(f"no reference spectrum for {len(missing)} molecule(s): {', '.join(missing[:10])}"
                  + (", ..." if len(missing) > 10 else ""), file=sys.stderr)
    if n_written == 1:
        rec = records[0]
        unit = "eV" if rec["energy_reference"] == "absolute" else "eV from E0"
        peak_ev = rec["main_line_ev" if rec["kind"] == "xes" else "main_peak_ev"]
        peak = (f"{'main line' if rec['kind'] == 'xes' else 'main peak'} {peak_ev:.2f} {unit} (intensity "
                f"{rec['main_line_intensity' if rec['kind'] == 'xes' else 'main_peak_intensity']:.3f})"
                if peak_ev is not None else "no peak inside the grid")
        where = peak if rec["kind"] == "xes" else f"E0 {rec['e0_ev']:.2f} {unit} (Larch), {peak}"
        shift = f"; energies shifted by {rec['energy_shift_ev']:+.2f} eV (--e0)" if args.e0 is not None else ""
        sites = "" if rec["absorber_atoms"] is None or len(rec["absorber_atoms"]) == 1 else (f"; average of {len(rec['absorber_atoms'])} sites "
                                                           f"(atoms {', '.join(map(str, rec['absorber_atoms']))})")
        score = "" if rec["uncertainty_score"] is None else f"uncertainty score {rec['uncertainty_score']:.3g} "
        print(f"{rec['name']}: {rec['element'] or ''} {rec['kind'].upper()}, {where}; model {rec['model']}{shift}{sites}; "
              f"{score}({trust_verdict(rec)})")
    print(f"wrote {n_written} spectra to {args.out}")
    return 0


def _predict_library(args: argparse.Namespace, spectra: list[str]) -> int:
    """``predict ... --out FILE.h5``: the whole library into one HDF5 file (xanesnet.screening)."""
    from xanesnet.screening import predict_library

    for flag in ("json", "plot", "reference", "e0"):
        if getattr(args, flag):
            raise XanesnetError(f"--{flag.replace('_', '-')} writes per-molecule files; not with an HDF5 output")
    summary = predict_library(args.paths, args.out, spectra=spectra, model=args.model,
                              model_for=None if args.model else default_model, absorber=args.absorber,
                              skip_bad=args.skip_bad, mc_samples=args.mc_samples, workers=args.workers,
                              scheduler=args.scheduler, chunk_size=args.chunk_size, progress=not args.no_progress)
    _report_skipped(summary.skipped)
    print(summary)
    return 0


def _model_groups(args: argparse.Namespace) -> dict[Path, list[Path]]:
    """The structure files of ``args.paths``, grouped by the model that predicts them (``--model``, or by element)."""
    from xanesnet.io.structures import find_structure_files

    files = find_structure_files(args.paths)
    if not files:
        raise XanesnetError("no structure files found in " + ", ".join(args.paths))
    if len(files) < 64:  # a few molecules: starting a thread pool costs more than it saves
        import torch

        torch.set_num_threads(1)
    if args.model:
        _check_model_element(files, Path(args.model), args)
        return {Path(args.model): files}
    return _files_by_model(files, args)


def _check_model_element(files: list[Path], model: Path, args: argparse.Namespace) -> None:
    """Refuse absorbers of another element than the model's, in one line; with --force, say loudly what that means."""
    from xanesnet.io.structures import absorber_element, read_structure

    try:
        element = json.loads((model / "config.json").read_text()).get("element")
    except (OSError, ValueError):
        return  # loading the model reports it
    if not element:
        return
    for f in files:
        try:
            found = absorber_element(read_structure(f), args.absorber)
        except XanesnetError:
            if getattr(args, "skip_bad", False):
                continue  # reported as skipped when predicted
            raise
        if found != element:
            if not getattr(args, "force", False):  # match and invert have no --force
                raise XanesnetError(f"absorber is {found} but model {model.name} is a {element} model: its spectrum would "
                                    f"be a {element} spectrum on {element} energies; use a {found} model (or --force)", path=f)
            print(f"warning: --force: predicting {found} absorbers with the {element} model {model.name}: the result is "
                  f"a {element} spectrum on {element} energies, not a {found} spectrum ({f.name} and any others)", file=sys.stderr)
            return


def _files_by_model(files: list[Path], args: argparse.Namespace) -> dict[Path, list[Path]]:
    """Group files by the shipped model for their absorber's element (a bad file fails here unless --skip-bad)."""
    from xanesnet.io.structures import absorber_element, read_structure

    groups: dict[Path, list[Path]] = {}
    for f in files:
        try:
            element = absorber_element(read_structure(f), args.absorber)
        except XanesnetError:
            if not args.skip_bad:
                raise
            groups.setdefault(default_model("Fe", args.spectrum), []).append(f)  # reported as skipped there
            continue
        groups.setdefault(default_model(element, args.spectrum, path=f), []).append(f)
    return groups


def cmd_select(args: argparse.Namespace) -> int:
    """Rank a pool of candidates by the model's uncertainty; write the top N as a table (via a temporary file)."""
    from xanesnet.atomic import write_text
    from xanesnet.predict import Predictor
    from xanesnet.uncertainty import SELECTION_STRATEGIES

    if args.n < 1:
        raise XanesnetError(f"-n must be at least 1, got {args.n}")
    _check_outputs(args.out)
    if args.strategy not in SELECTION_STRATEGIES:
        raise XanesnetError(f"unknown --strategy {args.strategy!r}; choose from {', '.join(SELECTION_STRATEGIES)}")
    groups = _model_groups(args)
    if len(groups) > 1:
        raise XanesnetError("the candidates need different models (" + ", ".join(sorted(Path(m).name for m in groups))
                            + "); select ranks for one model at a time: pass --model or one element's files")
    (model, group), = groups.items()
    predictor = Predictor.from_bundle(model)
    pred, skipped = predictor.predict_files(group, absorber=args.absorber, skip_bad=args.skip_bad,
                                            progress=not args.no_progress and len(group) > 50, mc_samples=args.mc_samples)
    _report_skipped(skipped)
    if pred.score is None:
        raise XanesnetError("this model gives no error bar (one member without dropout); select needs an ensemble or "
                            "dropout", path=model)
    bad = {p for p, _ in skipped}
    paths = [f for f in group if str(f) not in bad]
    order = SELECTION_STRATEGIES[args.strategy](pred.score, pred.extrapolation, pred.features, args.n, seed=args.seed)
    rows = ["rank\tname\tpath\tuncertainty_score\tbeyond_training_range\tfeature\ttrusted"]
    for rank, k in enumerate(order, 1):
        beyond = "" if pred.extrapolation is None else f"{pred.extrapolation[k]:.4g}"
        feature = (pred.extrapolated_feature or [None] * len(paths))[k] or ""
        rows.append(f"{rank}\t{pred.ids[k]}\t{paths[k]}\t{pred.score[k]:.4g}\t{beyond}\t{feature}\t"
                    f"{str(bool(pred.trusted[k])).lower()}")
    out = write_text(args.out, "\n".join(rows) + "\n")
    n_untrusted = sum(not t for t in pred.trusted)
    print(f"ranked {len(paths)} candidates with {Path(model).name}: {n_untrusted} not trusted; "
          f"wrote {len(order)} picked by '{args.strategy}' to {out}")
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    """Rank the candidates by how well their predicted spectra, shifted and scaled, explain the measured one."""
    from xanesnet.io.spectra import read_spectrum
    from xanesnet.match import rank_candidates
    from xanesnet.atomic import write_text
    from xanesnet.predict import Predictor
    from xanesnet.spectra import edge_energy

    measured = read_spectrum(args.measured, fmt=args.spectrum_format)
    groups = _model_groups(args)
    if len(groups) > 1:
        raise XanesnetError("the candidates have absorbers of different elements (models " + ", ".join(
            sorted(Path(m).name for m in groups)) + "); pass --model or candidates of one element")
    (model, files), = groups.items()
    pred, _ = Predictor.from_bundle(model).predict_files(files, absorber=args.absorber, progress=not args.no_progress and len(files) > 50)
    energy = pred.energy + (edge_energy(measured) if pred.relative else 0.0)  # a relative-grid model sits at the measured E0
    ranking = rank_candidates(measured, energy, pred.mean, pred.std, pred.ids, trusted=pred.trusted, window=args.window)
    out = write_text(args.out, ranking.table())
    if args.plot:
        from xanesnet.analysis.plots import plot_match

        plot_match(measured, energy, pred, ranking, Path(out).with_suffix(".png"))
    best = ranking.order[0]
    print(f"ranked {len(files)} candidates with {Path(model).name}: best {ranking.names[best]} "
          f"(weight {ranking.weight[best]:.2f}, shift {ranking.shift_ev[best]:+.2f} eV); wrote {out}")
    return 0


def cmd_invert(args: argparse.Namespace) -> int:
    """First shell of each spectrum with the inverse model of the element."""
    from xanesnet.inverse import InversePredictor, format_shells
    from xanesnet.io.spectra import read_spectrum
    from xanesnet.atomic import write_text

    if args.model:
        model = Path(args.model)
    elif args.element:
        model = MODELS_DIR / f"{args.element.lower()}-k-xanes-inverse"
        if not model.is_dir():
            raise XanesnetError(f"no shipped inverse model for {args.element} (none in {MODELS_DIR}); pass --model DIR")
    else:
        raise XanesnetError("give --element (the absorber) or --model DIR")
    predictor = InversePredictor.from_bundle(model)
    trained_on = predictor.config.get("element")
    if args.element and trained_on and args.element.capitalize() != trained_on:
        raise XanesnetError(f"the model was trained on {trained_on}, not {args.element.capitalize()}", path=model)
    spectra = [read_spectrum(p, fmt=args.spectrum_format) for p in args.spectra]
    for spec in spectra:  # a file that names its absorber (XDI Element.symbol) must name the model's
        said = (spec.meta or {}).get("element")
        if said and trained_on and str(said).capitalize() != trained_on:
            raise XanesnetError(f"the spectrum is of {said}, the model {model.name} of {trained_on}", path=spec.source)
    shells = predictor.predict(spectra)
    out = write_text(args.out, format_shells(shells))
    for k in (k for k in range(len(shells.ids)) if not shells.trusted[k]):
        print(f"warning: {shells.ids[k]}: NOT trusted: the spectrum lies {shells.extrapolation[k]:.3g} training standard "
              "deviations beyond anything the inverse model was trained on", file=sys.stderr)
    if len(shells.ids) == 1:
        print(f"{shells.ids[0]}: CN {shells.cn[0]} (p = {shells.cn_prob[0]:.2f}), r1 {shells.r1[0]:.3f} +- "
              f"{shells.r1_std[0]:.3f} A; model {model.name}")
    print(f"wrote {len(shells.ids)} result(s) to {out}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from xanesnet.io.structures import find_structure_files
    from xanesnet.simulate import simulate

    _check_outputs(args.out)
    files = find_structure_files(args.paths)
    if not files:
        raise XanesnetError("no structure files found in " + ", ".join(args.paths))
    summary = simulate(files, args.out, spectrum=args.spectrum, workers=args.workers, scheduler=args.scheduler,
                       timeout=args.timeout, absorber=args.absorber, progress=not args.no_progress,
                       retry_failed=args.retry_failed)
    print(summary)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from xanesnet.atomic import write_json
    from xanesnet.pipeline import evaluate_model

    _check_outputs(args.json, args.plot)
    if not args.features and not (args.xyz and args.spectra):
        raise XanesnetError("give --xyz DIR and --spectra DIR, or --features X.npz")
    metrics, pred, data = evaluate_model(args.model, args.xyz, args.spectra, features=args.features,
                                         heldout_only=args.heldout, absorber=args.absorber,
                                         spectrum_format=args.spectrum_format, mc_samples=args.mc_samples,
                                         progress=not args.no_progress)
    if args.json:
        write_json(args.json, metrics)
    if data.pairing and (data.pairing.structures_only or data.pairing.spectra_only):
        print(f"unmatched files: {data.pairing.report()}", file=sys.stderr)
    if args.plot:
        from xanesnet.analysis.plots import plot_evaluation

        plot_evaluation(data.energy, data.y, pred.mean, data.ids, Path(args.plot) / "evaluation", std=pred.std,
                        kind=pred.kind, mode=pred.mode, label=f"{Path(args.model).name}, {'held-out' if args.heldout else 'all'} molecules")
    flat = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    width = max(map(len, flat))
    for k, v in flat.items():
        print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    labels = {"heldout": "held-out", "training": "training (seen in training: optimistic)", "unseen": "unseen",
              "not_heldout": "not held out (may have been trained on: optimistic)"}
    splits = metrics["splits"]
    if len(splits) > 1 or "heldout" not in splits:
        print("by split:")
        for name, m in splits.items():
            print(f"  {labels[name]}: n {m['n']}, MSE {m['mse']:.4g}, RSE {m['rse']:.4g}, "
                  f"main peak {m['peak_position_error_ev_mean']:.2f} eV (mean)")
    return 0


def cmd_normalize(args: argparse.Namespace) -> int:
    from xanesnet.pipeline import normalize_files

    windows = {k: getattr(args, k) for k in ("pre1", "pre2", "norm1", "norm2", "nnorm")}
    written = normalize_files(args.paths, args.out, fmt=args.format, spectrum_format=args.spectrum_format, e0=args.e0,
                              **windows)
    for path, edge in written:
        print(f"{path.name}: E0 {edge.e0:.2f} eV, edge step {edge.edge_step:.4g}")
    print(f"wrote {len(written)} normalised spectra to {args.out}")
    return 0


def cmd_importance(args: argparse.Namespace) -> int:
    from xanesnet.analysis.importance import importance_from_files, write_importance
    from xanesnet.analysis.plots import plot_importance
    from xanesnet.data.dataset import default_cache_path

    _check_outputs(args.out)
    result = importance_from_files(args.model, args.xyz, args.spectra, windows=args.windows, groups=args.groups,
                                   n_repeats=args.repeats, seed=args.seed, max_samples=args.max_samples, heldout=args.heldout,
                                   absorber=args.absorber, spectrum_format=args.spectrum_format,
                                   cache=None if args.no_cache else (args.cache or default_cache_path()),
                                   progress=not args.no_progress)
    write_importance(result, args.out)
    plot_importance(result, Path(args.out) / "importance")
    print(f"permutation importance of {len(result.feature_names)} features, {len(result.group_columns)} groups on "
          f"{len(result.ids)} molecules ({result.reference} as reference), {result.n_repeats} repeats, seed {result.seed}")
    for w in result.windows:
        top = ", ".join(f"{name} {mean:.3g}" for name, mean, _ in result.ranking(w.name, "groups")[:4])
        print(f"  {w.name} ({w.e_min:g}-{w.e_max:g} eV, baseline MSE {result.baseline_mse[w.name]:.3g}): {top}")
    print(f"wrote {args.out}/importance_features.csv, importance_groups.csv, importance.json, importance.png, importance.svg")
    return 0


def _report_skipped(skipped: list[tuple[str, str]]) -> None:
    if skipped:
        print(f"skipped {len(skipped)} structure(s):", file=sys.stderr)
        for _, reason in skipped:
            print(f"  {reason}", file=sys.stderr)


if __name__ == "__main__":
    run()
