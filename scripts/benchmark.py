"""Benchmarks: featurisation, prediction, training and theory-vs-ML, written to docs/benchmarks.md.

Every comparison runs in one process with the contenders alternating (in
rotating order, chunk by chunk or run by run), so a machine that gets busier
or quieter during a run shifts all of them alike; we report medians over
repeats and the per-repeat ratios. The load average before and after each
section is recorded, and a section measured on a busy machine says so.

    python scripts/benchmark.py [--size tiny|full] [--sections featurize,predict,train,theory] [--out docs]

Sections (each skips with a printed reason when its data are absent):

featurize  ms/molecule on the 4,079 Fe complexes, one core: our wACSF end to end
           (``featurize_files``, file parsing included; presets ``xanesnet-2021``
           and ``default``) vs dscribe's ACSF with the same eta/mu (files read
           with ``ase.io.read``) vs plain ``ase.io.read`` (the I/O floor); and a
           numerical check that dscribe's per-element outputs, summed with the
           element weights, reproduce our G1/G2/G4.
predict    ``xanesnet predict`` cold start for one molecule vs ``python -c "import
           torch"`` (subprocess wall times, alternating); batch throughput after
           start-up; peak memory of the batch run; where the cold start goes.
screen     the tmQM Ti-Zn library (29,296 complexes, XANES, models chosen per element) into one HDF5 file
           (``xanesnet predict DIR --out r.h5 --workers 2``) against today's per-file text output
           (``--out DIR``), wall time and peak memory of the whole process tree (sum of PSS); memory
           against library size (1k, 10k, all); featurisation of the 4,079 Fe complexes as whole
           processes pinned to one core, ``xanesnet featurize`` (``xanesnet-2021``: 32 G2, 64 G4) against
           a script running dscribe's ACSF with the same G2/G4, both reading the same symbol-xyz files.
train      the shipped model's training time (from its config); 5-fold CV MSE and
           fit time of our single MLP vs scikit-learn's ``MLPRegressor`` on the same
           prebuilt features and folds.
smalltrain ``xanesnet train`` with its defaults on the 99-molecule Fe sample (held-out
           10% by name hash, seed 0): the data-size rules of
           ``TrainingSettings.for_size`` against the former fixed defaults (batch 64,
           patience 50, 10% validation, torch's threads), in turn, wall and CPU time
           and held-out accuracy.
theory     FEFF10 seconds per spectrum per metal (``feff_3d/index.tsv``, optionally
           live runs) vs our time per molecule; held-out accuracy on the Fe FDMNES
           set (single MLP, ensemble, GPR baseline if one is in ``models/``).

Results accumulate in ``OUT/benchmarks.json`` (a later run of one section
replaces only that section), and ``OUT/benchmarks.md`` plus the figures are
rewritten from it. ``--size full`` of the train section is long (scikit-learn
with max_iter 512 takes minutes per fold); run it on its own, e.g.
``nohup python scripts/benchmark.py --size full --sections train &``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from xanesnet.atomic import write_text
from xanesnet.experiments import cache_dir as _cache_dir
from xanesnet.experiments import git_commit, shared_root

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_root()
SECTIONS = ("featurize", "predict", "screen", "train", "theory", "smalltrain")
METALS = ("Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn")

#: Reference numbers for the same machine type (from the brief), in ms per molecule / file.
REFERENCE_MS = {"XANESNET tool wACSF": 1.2, "dscribe ACSF": 1.1, "ase.io.read": 1.3}
TARGETS = {
    "featurize_speedup_vs_dscribe": 5.0,  # ours end to end at least 5x faster than dscribe end to end
    "cold_start_s": 1.5,
    "cold_start_vs_torch": 1.3,
    "batch_mol_per_s": 2000.0,
    "peak_memory_mb": 1024.0,
    "screen_memory_mb": 1536.0,
    "train_time_ratio": 0.5,  # our fit time at most half of scikit-learn's, at lower MSE
    "small_train_s": 30.0,  # default `xanesnet train` on the 99-molecule sample
}
#: The training defaults before they scaled with the data size (``TrainingSettings.for_size``).
PREVIOUS_TRAINING_DEFAULTS = {"batch_size": 64, "patience": 50, "val_fraction": 0.1, "threads": os.cpu_count() or 1}
XANESNET_TOOL_COLD_START_S = 7.5


@dataclass(frozen=True)
class Size:
    """How much of each section to run."""

    n_molecules: int | None  # featurisation and batch set (None: all)
    repeats: int  # featurisation passes
    chunk: int  # molecules per alternation step
    check_molecules: int  # molecules in the dscribe equivalence check
    cold_runs: int  # cold-start subprocess runs per contender
    batch_repeats: int
    profile: bool  # -X importtime and the phase breakdown of the cold start
    folds: int
    train_samples: int | None
    epochs: int | None  # our max epochs (None: the default)
    max_iter: int  # scikit-learn's max_iter
    capped_epochs: int  # a third contender: ours with this many epochs at most (0: not run)
    feff_runs: int  # live FEFF10 runs
    metal_molecules: int | None  # molecules per metal in the theory timing
    fallback_epochs: int  # epochs of the stand-in model when none is shipped
    screen_sizes: tuple[int | None, ...] = (1000, 10000, None)  # library sizes of the memory curve (None: all)
    screen_runs: int = 1  # runs of the whole library, and of each baseline contender
    screen_baseline: int | None = 3000  # molecules of the HDF5-vs-text comparison (None: all)


SIZES = {
    "tiny": Size(n_molecules=12, repeats=2, chunk=4, check_molecules=12, cold_runs=1, batch_repeats=1, profile=False,
                 folds=2, train_samples=40, epochs=3, max_iter=3, capped_epochs=2, feff_runs=0, metal_molecules=3,
                 fallback_epochs=2, screen_sizes=(6,), screen_runs=1, screen_baseline=None),
    "full": Size(n_molecules=None, repeats=5, chunk=256, check_molecules=500, cold_runs=7, batch_repeats=5, profile=True,
                 folds=5, train_samples=None, epochs=None, max_iter=512, capped_epochs=25, feff_runs=2, metal_molecules=None,
                 fallback_epochs=30),
}


# --------------------------------------------------------------------------------------------------
# context: data, model, output
# --------------------------------------------------------------------------------------------------
class SectionSkipped(Exception):
    """A section cannot run here (missing data or model); the message says why."""


@dataclass
class FeData:
    xyz: Path
    spectra: Path
    label: str


class Context:
    """Arguments, data locations, the model used for prediction, and the results file."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.size_name = args.size
        size = SIZES[args.size]
        names = ("repeats", "cold_runs", "folds", "train_samples", "epochs", "max_iter", "capped_epochs", "feff_runs")
        overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
        if args.molecules is not None:
            overrides["n_molecules"] = args.molecules
        self.size = dataclasses.replace(size, **overrides)
        self.shared = Path(args.data) if args.data else SHARED
        self.out = Path(args.out)
        self.work = Path(args.work) if args.work else _cache_dir() / "benchmark"
        self.work.mkdir(parents=True, exist_ok=True)
        self.threads = args.threads
        self.results_path = self.out / "benchmarks.json"
        self._model: tuple[Path, dict] | None = None

    # -- data ---------------------------------------------------------------------------------------
    def fe_data(self) -> tuple[FeData | None, str]:
        """The Fe complexes with spectra: all 4,079 for ``full``, the 99-molecule sample for ``tiny``."""
        if self.size_name == "tiny":
            sample = self.shared / "fe_k_fdmnes_sample"
            if not (sample / "xyz").is_dir():
                return None, f"the Fe sample {sample} is not here (expected ../shared/data beside the repository)"
            return FeData(sample / "xyz", sample / "xanes", "Fe FDMNES sample (fe_k_fdmnes_sample)"), ""
        archive = self.shared / "fe_k_fdmnes_train.tar.gz"
        if not archive.is_file():
            return None, f"the Fe reference data {archive} is not here (expected ../shared/data beside the repository)"
        from xanesnet.experiments import fe_data_dir

        root = fe_data_dir(archive)
        return FeData(root / "xyz", root / "xanes_conv", "4,079 Fe complexes, FDMNES (fe_k_fdmnes_train)"), ""

    def fe_files(self, data: FeData) -> list[Path]:
        paths = sorted(data.xyz.glob("*.xyz"))
        return paths[: self.size.n_molecules] if self.size.n_molecules else paths

    # -- model --------------------------------------------------------------------------------------
    def model(self) -> tuple[Path, dict]:
        """The model to predict with: ``--model``, the shipped ``models/fe-k-xanes``, or a stand-in trained here."""
        if self._model is None:
            self._model = self._resolve_model()
        return self._model

    def _resolve_model(self) -> tuple[Path, dict]:
        if self.args.model:
            return Path(self.args.model), {"shipped": False, "cli_default": False, "note": "given with --model"}
        from xanesnet.resources import models_dir

        shipped = models_dir() / "fe-k-xanes"
        if (shipped / "config.json").is_file():
            # named by the commit it shipped with: a later retraining must not turn these numbers into the new model's
            sha = json.loads((shipped / "config.json").read_text()).get("model_sha256")
            return shipped, {"shipped": True, "cli_default": True, "model_sha256": sha,
                             "note": f"models/fe-k-xanes as shipped at commit {(git_commit() or 'unknown')[:12]}"}
        from xanesnet.descriptors import preset

        # keyed by the default descriptor's settings hash: a changed default never reuses an old stand-in
        out = self.work / f"standin-fe-model-{self.size_name}-{preset('default').settings_hash()}"
        note = (f"models/fe-k-xanes does not exist yet: a stand-in with the default architecture and ensemble size, trained "
                f"for {self.size.fallback_epochs} epochs on the 99-molecule Fe sample, is used; its start-up, memory and "
                f"speed match the shipped model's, its accuracy does not")
        if not (out / "config.json").is_file():
            sample = self.shared / "fe_k_fdmnes_sample"
            if not (sample / "xyz").is_dir():
                raise SectionSkipped(f"no model: models/fe-k-xanes is missing and so is {sample} to train a stand-in")
            print(f"[model] {note}", flush=True)
            from xanesnet.config import Config
            from xanesnet.pipeline import build_training_set, train_model

            config = Config(seed=0)
            config.training.epochs = self.size.fallback_epochs
            data = build_training_set(sample / "xyz", sample / "xanes", config)
            train_model(data, config, out, holdout=0.1, progress=False)
        return out, {"shipped": False, "cli_default": False, "note": note}

    # -- results ------------------------------------------------------------------------------------
    def load_results(self) -> dict:
        if self.results_path.is_file():
            try:
                return json.loads(self.results_path.read_text())
            except json.JSONDecodeError:
                pass
        return {"sections": {}}

    def record(self, name: str, result: dict) -> dict:
        """Merge one section's result into the results file (re-read first: another run may have written)."""
        results = self.load_results()
        results["machine"] = machine_info()
        results["versions"] = versions()
        results["commit"] = git_commit() or "unknown"  # the latest run; each section keeps its own in meta
        results.setdefault("sections", {})[name] = result
        write_text(self.results_path, json.dumps(results, indent=1, default=_json_default))
        return results


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def section_meta(ctx: Context, start_load: tuple[float, float, float]) -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    end_load = os.getloadavg()
    busy = max(start_load[0], end_load[0]) > 0.5 * cores
    return {"size": ctx.size_name, "settings": dataclasses.asdict(ctx.size), "threads": ctx.threads, "commit": git_commit(),
            "when": _dt.datetime.now().isoformat(timespec="seconds"), "command": "python " + " ".join(sys.argv),
            "load_before": list(start_load), "load_after": list(end_load), "cores": cores, "busy": busy}


def machine_info() -> dict:
    cpu = "unknown"
    ram_gb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gb": ram_gb, "platform": platform.platform()}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("xanesnet", "torch", "numpy", "dscribe", "ase", "scikit-learn", "threadpoolctl"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def log(section: str, msg: str) -> None:
    print(f"[{section}] {msg}", flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def summary(values: list[float]) -> dict:
    return {"median": median(values), "min": float(min(values)), "max": float(max(values)), "values": list(map(float, values))}


def single_thread(threads: int):
    """Limit numpy's BLAS and torch to ``threads`` (the featurisation comparison is one core)."""
    from threadpoolctl import threadpool_limits

    import torch

    torch.set_num_threads(threads)
    return threadpool_limits(limits=threads)


def alternate(contenders: dict[str, Callable[[list[int]], Any]], n: int, *, repeats: int, chunk: int,
              label: str) -> dict[str, list[float]]:
    """Seconds per pass over ``n`` items, per contender and repeat, the contenders taking turns chunk by chunk.

    In chunk ``c`` of repeat ``r`` the order is rotated by ``c + r``, so no
    contender always runs first (cold caches) or last.
    """
    names = list(contenders)
    chunks = [list(range(i, min(i + chunk, n))) for i in range(0, n, chunk)]
    for name in names:  # warm-up: imports, caches, first-call costs
        contenders[name](chunks[0][: min(4, len(chunks[0]))])
    totals: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        acc = dict.fromkeys(names, 0.0)
        gc.collect()
        for c, idx in enumerate(chunks):
            k = (c + r) % len(names)
            for name in names[k:] + names[:k]:
                t0 = time.perf_counter()
                contenders[name](idx)
                acc[name] += time.perf_counter() - t0
        for name in names:
            totals[name].append(acc[name])
        log(label, f"repeat {r + 1}/{repeats}: " + ", ".join(f"{name} {acc[name] / n * 1e3:.3f}" for name in names) + " ms/mol")
    return totals


@dataclass
class Measured:
    wall: float
    maxrss_mb: float
    returncode: int
    stdout: str
    stderr: str


# Runs the command and reports its wall time and ru_maxrss. A small launcher, because a child's ru_maxrss
# starts from the RSS of the process that forked it (kept across exec): forked from this big process, every
# child would report this process's memory.
_LAUNCHER = r"""
import json, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    t0 = time.perf_counter()
    rc = subprocess.call(sys.argv[3:], stdout=out, stderr=err)
    wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "rc": rc}))
"""


def run_measured(cmd: list[str], *, env: dict | None = None) -> Measured:
    """Wall time and peak resident memory (``ru_maxrss``) of a command, measured by a small launcher process."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        launcher = subprocess.run([sys.executable, "-c", _LAUNCHER, str(out), str(err), *cmd], capture_output=True, text=True, env=env)
        if launcher.returncode != 0:
            raise RuntimeError(f"launcher failed: {launcher.stderr.strip()}")
        m = json.loads(launcher.stdout.strip().splitlines()[-1])
        return Measured(m["wall"], m["maxrss_kb"] / 1024.0, m["rc"], out.read_text(errors="replace"), err.read_text(errors="replace"))


def alternate_commands(cmds: dict[str, list[str]], runs: int, *, label: str, warmup: bool = True) -> dict[str, dict]:
    """Run each command ``runs`` times, taking turns in rotating order; wall times and peak memory."""
    names = list(cmds)
    if warmup:
        for name in names:
            run_measured(cmds[name])
    out: dict[str, dict] = {name: {"wall": [], "maxrss_mb": [], "failed": []} for name in names}
    for r in range(runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            m = run_measured(cmds[name])
            out[name]["wall"].append(m.wall)
            out[name]["maxrss_mb"].append(m.maxrss_mb)
            if m.returncode != 0:
                out[name]["failed"].append(m.stderr.strip().splitlines()[-1] if m.stderr.strip() else f"exit {m.returncode}")
        log(label, f"run {r + 1}/{runs}: " + ", ".join(f"{name} {out[name]['wall'][-1]:.2f} s" for name in names))
    return out


def portable(path: str | os.PathLike) -> str:
    """A path or command as written in the report: the repository as ``.``, the home directory as ``~``."""
    return str(path).replace(str(ROOT), ".").replace(str(Path.home()), "~")


def xanesnet_command() -> list[str]:
    """The ``xanesnet`` console script beside this interpreter (what a user runs), else ``python -m xanesnet.cli``."""
    exe = Path(sys.executable).parent / "xanesnet"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "xanesnet.cli"]


# --------------------------------------------------------------------------------------------------
# 1. featurisation
# --------------------------------------------------------------------------------------------------
def write_symbol_xyz(structures, out_dir: Path) -> list[Path]:
    """Copies with element symbols in column 1 (what ``ase.io.read`` reads), written once."""
    from ase.data import chemical_symbols

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in structures:
        path = out_dir / f"{s.name}.xyz"
        if not path.is_file():
            rows = "\n".join(f"{chemical_symbols[z]:<2s} {x:14.8f} {y:14.8f} {zz:14.8f}" for z, (x, y, zz) in zip(s.numbers, s.positions))
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(f"{len(s)}\n{s.name}\n{rows}\n")
            os.replace(tmp, path)
        paths.append(path)
    return paths


def dscribe_acsf(desc, species: list[int]):
    """dscribe's ACSF with our eta/mu (G2) and eta/zeta/lambda (G4), cutoff r_max, on ``species``."""
    from dscribe.descriptors import ACSF

    eta2, mu2 = desc._g2_grid
    lam, zeta, _ = desc._angular
    g4 = [(eta, z, lm) for eta in desc._g4_widths for lm, z in zip(lam, zeta)]  # our order: width, lambda, zeta
    return ACSF(r_cut=desc.r_max, g2_params=np.column_stack([eta2, mu2]), g4_params=g4 or None, species=species)


def dscribe_equivalence(desc, structures, absorbers, species: list[int]) -> dict:
    """Largest difference between our G1/G2/G4 and dscribe's per-element outputs summed with our weights.

    dscribe gives G1 and G2 per neighbour element ``a`` and G4 per unordered
    element pair ``(a, b)``; ours are ``sum_a G1_a``, ``sum_a w_a G2_a`` and
    ``sum_(a,b) w_a w_b G4_ab`` with ``w = weight_scale * Z``. Reported per
    family as max over molecules of ``max|ours - dscribe| / max|ours|``.
    """
    import ase

    acsf = dscribe_acsf(desc, species)
    z = np.asarray(getattr(acsf, "_atomic_numbers", species))
    w = desc.weight_scale * z.astype(float)
    n_s, n_g2 = len(z), desc.n_g2
    n_g4 = len(desc._g4_widths) * len(desc._angular[0])
    pair_w = np.array([w[a] * w[b] for a in range(n_s) for b in range(a + 1)])  # dscribe's pair order: a >= b
    worst = {"G1": 0.0, "G2": 0.0, "G4": 0.0}
    for s, a in zip(structures, absorbers):
        ours = desc.create(s, a)
        out = acsf.create(ase.Atoms(numbers=s.numbers, positions=s.positions), centers=[a])[0]
        per_el = out[: n_s * (1 + n_g2)].reshape(n_s, 1 + n_g2)
        rebuilt = {"G1": per_el[:, :1].sum(0), "G2": w @ per_el[:, 1:],
                   "G4": pair_w @ out[n_s * (1 + n_g2):].reshape(len(pair_w), n_g4)}
        ref = {"G1": ours[:1], "G2": ours[1:1 + n_g2], "G4": ours[1 + n_g2:1 + n_g2 + n_g4]}
        for fam in worst:
            scale = np.abs(ref[fam]).max()
            if scale > 0:
                worst[fam] = max(worst[fam], float(np.abs(rebuilt[fam] - ref[fam]).max() / scale))
    return {"max_rel_diff": worst, "n_molecules": len(structures), "dscribe_features": int(acsf.get_number_of_features()),
            "our_features": int(desc.n_features), "clip_cutoff": desc.clip_cutoff}


def bench_featurize(ctx: Context) -> dict:
    data, reason = ctx.fe_data()
    if data is None:
        return {"skipped": reason}
    from xanesnet.data.dataset import featurize_files
    from xanesnet.descriptors import preset
    from xanesnet.io.structures import FIRST_ROW_TM_Z, read_structure, resolve_absorber

    with single_thread(1):
        paths = ctx.fe_files(data)
        n = len(paths)
        log("featurize", f"{n} molecules from {data.xyz}; one thread")
        for p in paths:  # warm the page cache for every contender alike
            p.read_bytes()
        structures = [read_structure(p) for p in paths]
        absorbers = [resolve_absorber(s) for s in structures]
        species = sorted({int(z) for s in structures for z in s.numbers})
        sym_paths = write_symbol_xyz(structures, ctx.work / f"symbol_xyz_{ctx.size_name}")
        for p in sym_paths:
            p.read_bytes()
        d2021, ddefault = preset("xanesnet-2021"), preset("default")
        contenders: dict[str, Callable[[list[int]], Any]] = {
            "xanesnet wACSF xanesnet-2021, end to end": lambda idx: featurize_files([paths[i] for i in idx], d2021),
            "xanesnet wACSF default, end to end": lambda idx: featurize_files([paths[i] for i in idx], ddefault),
            "xanesnet wACSF xanesnet-2021, symbol xyz": lambda idx: featurize_files([sym_paths[i] for i in idx], d2021),
            "xanesnet wACSF xanesnet-2021, descriptor only": lambda idx: d2021.create_batch([structures[i] for i in idx],
                                                                                 [absorbers[i] for i in idx]),
        }
        result: dict[str, Any] = {"data": data.label, "n_molecules": n, "species": species}
        try:
            import ase.io

            contenders["ase.io.read (I/O floor)"] = lambda idx: [ase.io.read(sym_paths[i]) for i in idx]
        except ImportError as exc:
            result["ase_skipped"] = f"ase.io unavailable ({exc})"
        try:
            import dscribe  # noqa: F401
        except ImportError as exc:
            result["dscribe_skipped"] = f"dscribe is not installed ({exc}); pip install dscribe"
        else:
            acsf = dscribe_acsf(d2021, species)
            tm = np.asarray(FIRST_ROW_TM_Z)
            atoms = [ase.io.read(p) for p in sym_paths]

            def dscribe_e2e(idx: list[int]) -> None:
                for i in idx:
                    a = ase.io.read(sym_paths[i])
                    acsf.create(a, centers=[int(np.flatnonzero(np.isin(a.numbers, tm))[0])])

            contenders["dscribe ACSF, end to end (ase.io.read + create)"] = dscribe_e2e
            contenders["dscribe ACSF, descriptor only"] = lambda idx: [acsf.create(atoms[i], centers=[absorbers[i]]) for i in idx]
            k = min(n, ctx.size.check_molecules)
            log("featurize", f"checking dscribe against our G1/G2/G4 on {k} molecules")
            result["equivalence"] = {name: dscribe_equivalence(preset(name), structures[:k], absorbers[:k], species)
                                     for name in ("xanesnet-2021", "plain")}
            result["dscribe_features"] = int(acsf.get_number_of_features())
            log("featurize", "max rel diff " + json.dumps({k: v["max_rel_diff"] for k, v in result["equivalence"].items()}))

        totals = alternate(contenders, n, repeats=ctx.size.repeats, chunk=min(ctx.size.chunk, n), label="featurize")
    ms = {name: summary([t / n * 1e3 for t in ts]) for name, ts in totals.items()}
    result["ms_per_molecule"] = ms
    ours, ours_def = "xanesnet wACSF xanesnet-2021, end to end", "xanesnet wACSF default, end to end"
    ratios = {}
    if "dscribe ACSF, end to end (ase.io.read + create)" in totals:
        d = totals["dscribe ACSF, end to end (ase.io.read + create)"]
        ratios["dscribe end to end / ours (xanesnet-2021)"] = summary([a / b for a, b in zip(d, totals[ours])])
        ratios["dscribe end to end / ours (default)"] = summary([a / b for a, b in zip(d, totals[ours_def])])
        ratios["dscribe descriptor only / ours descriptor only"] = summary(
            [a / b for a, b in zip(totals["dscribe ACSF, descriptor only"], totals["xanesnet wACSF xanesnet-2021, descriptor only"])])
    if "ase.io.read (I/O floor)" in totals:
        ratios["ase.io.read / ours (xanesnet-2021)"] = summary([a / b for a, b in zip(totals["ase.io.read (I/O floor)"], totals[ours])])
    result["ratios"] = ratios
    return result


# --------------------------------------------------------------------------------------------------
# 2. prediction
# --------------------------------------------------------------------------------------------------
#: The predict CLI with two small changes the report proposes: one torch thread (no OpenMP pool start-up for
#: one molecule) and ``os._exit`` after flushing (no interpreter teardown of torch's modules).
WHATIF_SNIPPET = r"""
import os, sys
os.environ["OMP_NUM_THREADS"] = "1"
from xanesnet.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""
WHATIF = "what-if: predict, 1 thread + os._exit"

PHASES_SNIPPET = r"""
import time
t = [time.perf_counter()]
import sys, json
import xanesnet.cli
t.append(time.perf_counter())
import numpy
t.append(time.perf_counter())
import torch
t.append(time.perf_counter())
from xanesnet.predict import Predictor, write_spectra
t.append(time.perf_counter())
p = Predictor.from_bundle(sys.argv[1])
t.append(time.perf_counter())
pred, _ = p.predict_files([sys.argv[2]])
t.append(time.perf_counter())
write_spectra(pred, sys.argv[3])
t.append(time.perf_counter())
names = ["import xanesnet.cli", "import numpy", "import torch", "import xanesnet.predict (bundle, io, ...)",
         "load model (config, weights, checksum)", "featurize + predict 1 molecule", "write spectrum"]
print(json.dumps(dict(zip(names, [b - a for a, b in zip(t, t[1:])]))))
"""


def parse_importtime(stderr: str, top: int = 12) -> dict:
    """Top-level imports by cumulative time from ``python -X importtime`` output (seconds)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line.split(":", 1)[1].split("|")
        if len(parts) != 3:
            continue
        self_us, cum_us, name = parts
        level = (len(name) - len(name.lstrip()) - 1) // 2
        rows.append((level, name.strip(), int(self_us) / 1e6, int(cum_us) / 1e6))
    top_level = sorted((r for r in rows if r[0] == 0), key=lambda r: -r[3])
    by_package: dict[str, float] = {}
    for level, name, self_s, _ in rows:
        by_package[name.split(".")[0]] = by_package.get(name.split(".")[0], 0.0) + self_s
    return {"total_s": sum(r[3] for r in top_level),
            "top_level": [{"module": n, "cumulative_s": c} for _, n, _, c in top_level[:top]],
            "by_package_self_s": dict(sorted(by_package.items(), key=lambda kv: -kv[1])[:top])}


def bench_predict(ctx: Context) -> dict:
    data, reason = ctx.fe_data()
    model, info = ctx.model()
    mol = ROOT / "data" / "examples" / "ferrocene.xyz"
    if not mol.is_file():
        if data is None:
            return {"skipped": f"no molecule to predict: {mol} is missing and {reason}"}
        mol = ctx.fe_files(data)[0]
    exe = xanesnet_command()
    model_args = [] if info["cli_default"] else ["--model", str(model)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-predict-", dir=ctx.work))
    result: dict[str, Any] = {"model": portable(model), "model_info": info, "molecule": mol.name, "command": portable(exe[-1])}
    try:
        predict_args = ["predict", str(mol), "--out", str(tmp / "one"), "--no-progress", *model_args]
        cmds = {
            "xanesnet predict (1 molecule)": [*exe, *predict_args],
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            'python -c "pass"': [sys.executable, "-c", "pass"],
        }
        profile = ctx.args.profile if ctx.args.profile is not None else ctx.size.profile
        if profile:
            cmds[WHATIF] = [sys.executable, "-c", WHATIF_SNIPPET, *predict_args]
        log("predict", f"cold start, {ctx.size.cold_runs} alternating runs each: {' '.join(cmds['xanesnet predict (1 molecule)'])}")
        cold = alternate_commands(cmds, ctx.size.cold_runs, label="predict", warmup=ctx.size_name != "tiny")
        if cold["xanesnet predict (1 molecule)"]["failed"]:
            return {**result, "error": "xanesnet predict failed: " + cold["xanesnet predict (1 molecule)"]["failed"][0]}
        p, t = cold["xanesnet predict (1 molecule)"]["wall"], cold['python -c "import torch"']["wall"]
        result["cold_start_s"] = {name: summary(v["wall"]) for name, v in cold.items()}
        result["cold_start_maxrss_mb"] = {name: median(v["maxrss_mb"]) for name, v in cold.items()}
        result["cold_start_vs_torch"] = summary([a / b for a, b in zip(p, t)])
        over = median(p) > TARGETS["cold_start_s"] or median(p) / median(t) > TARGETS["cold_start_vs_torch"]
        if profile or (over and ctx.args.profile is None and ctx.size_name != "tiny"):
            log("predict", "profiling the cold start (-X importtime, phase timer)")
            m = run_measured([sys.executable, "-X", "importtime", "-m", "xanesnet.cli", "predict", str(mol), "--out", str(tmp / "prof"),
                              "--no-progress", *model_args])
            result["importtime"] = parse_importtime(m.stderr)
            phases = []
            for _ in range(max(1, min(3, ctx.size.cold_runs))):
                m = run_measured([sys.executable, "-c", PHASES_SNIPPET, str(model), str(mol), str(tmp / "phases")])
                if m.returncode == 0:
                    ph = json.loads(m.stdout.strip().splitlines()[-1])
                    ph["interpreter start-up and exit"] = m.wall - sum(ph.values())
                    phases.append(ph)
            if phases:
                result["phases_s"] = {k: median([ph[k] for ph in phases]) for k in phases[0]}

        # batch: featurize + predict after start-up, in this process
        if data is None:
            result["batch_skipped"] = reason
        else:
            from xanesnet.data.dataset import featurize_files
            from xanesnet.predict import Predictor

            paths = ctx.fe_files(data)
            with single_thread(ctx.threads):
                predictor = Predictor.from_bundle(model)
                predictor.predict_files(paths[:8])  # warm-up
                feat_s, pred_s = [], []
                for r in range(ctx.size.batch_repeats):
                    gc.collect()
                    t0 = time.perf_counter()
                    feats = featurize_files(paths, predictor.descriptor)
                    t1 = time.perf_counter()
                    predictor.predict_features(feats.x, ids=feats.ids)
                    t2 = time.perf_counter()
                    feat_s.append(t1 - t0)
                    pred_s.append(t2 - t1)
                    log("predict", f"batch {r + 1}/{ctx.size.batch_repeats}: {len(paths)} molecules in {t2 - t0:.2f} s "
                                   f"({len(paths) / (t2 - t0):.0f}/s; featurize {t1 - t0:.2f} s, networks {t2 - t1:.2f} s)")
                # the CLI's other steps over the same files: grouping by absorber element (without --model) and writing
                steps = {}
                try:
                    from xanesnet.cli import _files_by_model

                    ns = argparse.Namespace(absorber=None, skip_bad=False, spectrum="xanes")
                    t0 = time.perf_counter()
                    _files_by_model(paths, ns)
                    steps["group files by absorber element (reads every file)"] = time.perf_counter() - t0
                except Exception as exc:  # noqa: BLE001 - a private helper that may change; or no shipped model
                    steps["group files by absorber element"] = f"not measured ({type(exc).__name__}: {exc})"
                from xanesnet.predict import write_spectra

                pred = predictor.predict_features(feats.x, ids=feats.ids)
                t0 = time.perf_counter()
                write_spectra(pred, tmp / "written")
                steps["write one text file per molecule"] = time.perf_counter() - t0
            n = len(paths)
            result["cli_steps_s"] = steps
            result["batch"] = {"n_molecules": n, "threads": ctx.threads,
                               "mol_per_s": summary([n / (a + b) for a, b in zip(feat_s, pred_s)]),
                               "featurize_s": summary(feat_s), "networks_s": summary(pred_s),
                               "ms_per_molecule": median([(a + b) / n * 1e3 for a, b in zip(feat_s, pred_s)])}
            # the real CLI over the whole directory in a subprocess: wall time and peak memory
            cmd = [*exe, "predict", str(data.xyz), "--out", str(tmp / "batch"), "--no-progress", *model_args]
            if ctx.size.n_molecules:
                sub = tmp / "batch_in"
                sub.mkdir()
                for p in paths:
                    os.symlink(p, sub / p.name)
                cmd[len(exe) + 1] = str(sub)
            log("predict", f"peak memory: {' '.join(cmd)}")
            m = run_measured(cmd)
            result["cli_batch"] = {"n_molecules": n, "wall_s": m.wall, "maxrss_mb": m.maxrss_mb, "mol_per_s": n / m.wall,
                                   "returncode": m.returncode,
                                   "command": portable(" ".join(["xanesnet", *cmd[len(exe):]]).replace(str(tmp), "TMP"))}
            if m.returncode != 0:
                result["cli_batch"]["error"] = m.stderr.strip().splitlines()[-1] if m.stderr.strip() else ""
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


# --------------------------------------------------------------------------------------------------
# 2b. screening a library into one HDF5 file
# --------------------------------------------------------------------------------------------------
@dataclass
class TreeRun:
    """A command's wall time, exit code and peak memory summed over its whole process tree."""

    wall: float
    returncode: int
    peak_pss_mb: float
    peak_rss_mb: float
    stderr: str
    stdout: str
    cpu_s: float  # user + system CPU seconds of the whole tree (what the run costs, whatever else the machine does)


def _tree_memory(root: int) -> tuple[float, float]:
    """Summed PSS and RSS (MB) of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    pss = rss = 0.0
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) / 1024
        except OSError:
            continue
    return pss, rss


def run_tree(cmd: list[str], *, cpus: set[int] | None = None, env: dict | None = None, interval: float = 0.1) -> TreeRun:
    """Run ``cmd`` (optionally pinned to ``cpus``), sampling the memory of its process tree every ``interval`` s."""
    import resource
    import threading

    with tempfile.TemporaryDirectory() as tmp:
        out, err = open(Path(tmp) / "out", "w+"), open(Path(tmp) / "err", "w+")
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, preexec_fn=preexec)
        peak = [0.0, 0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                pss, rss = _tree_memory(proc.pid)
                peak[0], peak[1] = max(peak[0], pss), max(peak[1], rss)
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        out.seek(0)
        err.seek(0)
        return TreeRun(wall, rc, peak[0], peak[1], err.read(), out.read(), cpu)


def tmqm_files(ctx: Context) -> list[Path] | None:
    """The tmQM Ti-Zn geometries, extracted once into the cache (never into the repository); ``None`` if absent."""
    archive = ctx.shared / "tmqm_3d.tar.gz"
    if not archive.is_file():
        return None
    from xanesnet.data.feff import tmqm_dir

    root = tmqm_dir(archive, _cache_dir())
    return sorted(root.glob("*/*.xyz"))


def _library_dir(files: list[Path], where: Path) -> Path:
    """A directory of symlinks to ``files`` (predict reads directories)."""
    where.mkdir(parents=True, exist_ok=True)
    for f in files:
        os.symlink(f, where / f.name)
    return where


#: dscribe's ACSF over a directory of symbol xyz files as a whole process: read with ase, describe the metal, save.
DSCRIBE_SNIPPET = r"""
import json, sys
from pathlib import Path
import numpy as np, ase.io
from dscribe.descriptors import ACSF
params = json.loads(Path(sys.argv[1]).read_text())
acsf = ACSF(r_cut=params["r_cut"], g2_params=params["g2"], g4_params=params["g4"], species=params["species"])
metals = np.array([22, 23, 24, 25, 26, 27, 28, 29, 30])
rows = []
for f in sorted(Path(sys.argv[2]).glob("*.xyz")):
    atoms = ase.io.read(f)
    rows.append(acsf.create(atoms, centers=[int(np.flatnonzero(np.isin(atoms.numbers, metals))[0])])[0])
np.save(sys.argv[3], np.array(rows))
"""


def bench_screen(ctx: Context) -> dict:
    result: dict[str, Any] = {}
    exe = xanesnet_command()
    files = tmqm_files(ctx)
    tmp = Path(tempfile.mkdtemp(prefix="bench-screen-", dir=ctx.work))
    try:
        if files is None:
            result["library_skipped"] = f"the tmQM geometries {ctx.shared / 'tmqm_3d.tar.gz'} are not here"
        else:
            if ctx.size.n_molecules:
                files = files[:: max(1, len(files) // ctx.size.n_molecules)][: ctx.size.n_molecules]
            for f in files:  # warm the page cache for every contender alike
                f.read_bytes()
            lib = _library_dir(files, tmp / "lib")
            n = len(files)
            h5, text = "one HDF5 file, 2 workers", "per-file text output (baseline)"

            def command(name: str, where: Path) -> list[str]:
                out = tmp / ("r.h5" if name == h5 else "txt")
                shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
                return [*exe, "predict", str(where), "--out", str(out), *(["--workers", "2"] if name == h5 else []), "--no-progress"]

            def measured(name: str, where: Path, count: int, label: str) -> TreeRun:
                run = run_tree(command(name, where))
                if run.returncode != 0:
                    raise RuntimeError(f"{name} failed: {run.stderr.strip().splitlines()[-1:]}")
                log("screen", f"{label}: {name}: {count} molecules in {run.wall:.1f} s ({count / run.wall:,.0f}/s), "
                              f"{run.cpu_s:.1f} CPU s, peak {run.peak_pss_mb:.0f} MB PSS ({run.peak_rss_mb:.0f} MB RSS), "
                              f"load {os.getloadavg()[0]:.1f}")
                return run

            try:
                main_run = [measured(h5, lib, n, f"whole library, run {r + 1}") for r in range(ctx.size.screen_runs)]
                from xanesnet.io.results import read_results, read_skipped

                stored = read_results(tmp / "r.h5")
                result["present"] = sum(len(g.ids) for g in stored.values())
                result["skipped_bad"] = len(read_skipped(tmp / "r.h5"))
                result["groups"] = {name: len(g.ids) for name, g in stored.items()}
                result["file_mb"] = (tmp / "r.h5").stat().st_size / 2**20
                # the baseline on the first molecules of the library (the text output is slow), contenders alternating
                m = min(n, ctx.size.screen_baseline or n)
                sub = _library_dir(files[:m], tmp / f"lib{m}")
                pair: dict[str, list[TreeRun]] = {h5: [], text: []}
                for r in range(ctx.size.screen_runs):
                    for name in ([h5, text] if r % 2 == 0 else [text, h5]):
                        pair[name].append(measured(name, sub, m, f"baseline pair, run {r + 1}"))
            except RuntimeError as exc:
                return {**result, "error": str(exc)}
            result["library"] = {"n_molecules": n, "data": "tmQM Ti-Zn (tmqm_3d), XANES, models chosen per element",
                                 "command": portable(" ".join(["xanesnet", *command(h5, lib)[len(exe):]]).replace(str(tmp), "TMP")),
                                 "wall_s": summary([r.wall for r in main_run]), "mol_per_s": summary([n / r.wall for r in main_run]),
                                 "cpu_s": summary([r.cpu_s for r in main_run]),
                                 "peak_pss_mb": max(r.peak_pss_mb for r in main_run),
                                 "peak_rss_mb": max(r.peak_rss_mb for r in main_run)}
            result["baseline"] = {"n_molecules": m,
                                  "commands": {k: portable(" ".join(["xanesnet", *command(k, sub)[len(exe):]]).replace(str(tmp), "TMP"))
                                               for k in pair},
                                  "wall_s": {k: summary([r.wall for r in v]) for k, v in pair.items()},
                                  "cpu_s": {k: summary([r.cpu_s for r in v]) for k, v in pair.items()},
                                  "peak_pss_mb": {k: max(r.peak_pss_mb for r in v) for k, v in pair.items()},
                                  "speedup_wall": summary([b.wall / a.wall for a, b in zip(pair[h5], pair[text])]),
                                  "speedup_cpu": summary([b.cpu_s / a.cpu_s for a, b in zip(pair[h5], pair[text])])}

            curve = [{"n_molecules": n, "wall_s": median([r.wall for r in main_run]), "cpu_s": median([r.cpu_s for r in main_run]),
                      "peak_pss_mb": max(r.peak_pss_mb for r in main_run), "peak_rss_mb": max(r.peak_rss_mb for r in main_run),
                      "returncode": 0}]  # the whole library: the runs above
            for size in ctx.size.screen_sizes:
                if not size or size >= n:
                    continue
                part = files[:size]
                run = run_tree([*exe, "predict", str(_library_dir(part, tmp / f"curve{len(part)}")), "--out",
                                str(tmp / f"c{len(part)}.h5"), "--workers", "2", "--no-progress"])
                curve.append({"n_molecules": len(part), "wall_s": run.wall, "cpu_s": run.cpu_s, "peak_pss_mb": run.peak_pss_mb,
                              "peak_rss_mb": run.peak_rss_mb, "returncode": run.returncode})
                log("screen", f"memory curve: {len(part)} molecules: peak {run.peak_pss_mb:.0f} MB PSS, {run.wall:.1f} s")
            result["memory_curve"] = sorted(curve, key=lambda c: c["n_molecules"])

        data, reason = ctx.fe_data()
        if data is None:
            result["featurize_skipped"] = reason
        else:
            result["featurize_processes"] = _featurize_processes(ctx, data, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _featurize_processes(ctx: Context, data: FeData, tmp: Path) -> dict:
    """``xanesnet featurize`` and a dscribe script as whole processes on one core, over the same symbol xyz files."""
    from xanesnet.descriptors import preset
    from xanesnet.io.structures import read_structure

    paths = ctx.fe_files(data)
    structures = [read_structure(p) for p in paths]
    sym_dir = ctx.work / f"symbol_xyz_{ctx.size_name}"
    sym_paths = write_symbol_xyz(structures, sym_dir)
    src = tmp / "sym"
    _library_dir(sym_paths, src)  # exactly these files, whatever else the scratch directory holds
    for p in sym_paths:
        p.read_bytes()
    d = preset("xanesnet-2021")
    species = sorted({int(z) for s in structures for z in s.numbers})
    lam, zeta, _ = d._angular
    params = {"r_cut": d.r_max, "g2": np.column_stack(d._g2_grid).tolist(),  # (eta, mu) rows, as dscribe_acsf
              "g4": [[float(eta), float(z), float(lm)] for eta in d._g4_widths for lm, z in zip(lam, zeta)], "species": species}
    (tmp / "acsf.json").write_text(json.dumps(params))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cpus = {sorted(os.sched_getaffinity(0))[0]} if hasattr(os, "sched_getaffinity") else None
    cmds = {"xanesnet featurize (xanesnet-2021)": [*xanesnet_command(), "featurize", str(src), "--preset", "xanesnet-2021",
                                                    "--out", str(tmp / "ours.npz"), "--no-progress"],
            "dscribe ACSF script": [sys.executable, "-c", DSCRIBE_SNIPPET, str(tmp / "acsf.json"), str(src), str(tmp / "dscribe.npy")],
            'python -c "import numpy"': [sys.executable, "-c", "import numpy"]}
    runs: dict[str, list[float]] = {name: [] for name in cmds}
    cpu: dict[str, list[float]] = {name: [] for name in cmds}
    for r in range(ctx.size.screen_runs):
        k = r % len(cmds)
        for name in list(cmds)[k:] + list(cmds)[:k]:
            run = run_tree(cmds[name], cpus=cpus, env=env)
            if run.returncode != 0:
                return {"error": f"{name} failed: {run.stderr.strip().splitlines()[-1:]}"}
            runs[name].append(run.wall)
            cpu[name].append(run.cpu_s)
        log("screen", f"featurize processes, run {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in runs.items()))
    ours, theirs = runs["xanesnet featurize (xanesnet-2021)"], runs["dscribe ACSF script"]
    return {"n_molecules": len(paths), "data": data.label, "cpu": sorted(cpus) if cpus else None,
            "wall_s": {k: summary(v) for k, v in runs.items()}, "cpu_s": {k: summary(v) for k, v in cpu.items()},
            "ratio_dscribe_over_ours": summary([b / a for a, b in zip(ours, theirs)]),
            "cpu_ratio_dscribe_over_ours": summary([b / a for a, b in zip(cpu["xanesnet featurize (xanesnet-2021)"],
                                                                           cpu["dscribe ACSF script"])]),
            "our_features": d.n_features,
            "g2": d.n_g2, "g4": d.n_g4, "species": species}


# --------------------------------------------------------------------------------------------------
# 3. training
# --------------------------------------------------------------------------------------------------
def feature_npz(ctx: Context, data: FeData) -> Path:
    """x (default descriptor, via the library behind ``xanesnet featurize``) and y (the convolved spectra), built once."""
    from xanesnet.data.dataset import load_spectra
    from xanesnet.descriptors import preset
    from xanesnet.pipeline import featurize_to_npz

    # keyed by the descriptor's settings hash (changed settings never reuse old features)
    out = ctx.work / f"fe_default_{ctx.size_name}_{preset('default').settings_hash()}.npz"
    if out.is_file():
        return out

    log("train", f"building {out} (featurize + spectra)")
    paths = sorted(data.xyz.glob("*.xyz"))
    stems = {p.stem for p in data.spectra.glob("*.txt")}
    paths = [p for p in paths if p.stem in stems]
    tmp = ctx.work / f".features_{ctx.size_name}.npz"
    feats = featurize_to_npz(paths, preset("default").to_dict(), tmp, progress=False)
    energy, y = load_spectra([data.spectra / f"{i}.txt" for i in feats.ids])
    with np.load(tmp, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    tmp.unlink()
    np.savez_compressed(out, **arrays, y=y, energy=energy)
    return out


def shipped_training_info() -> dict:
    out: dict[str, Any] = {}
    cfg_path = ROOT / "models" / "fe-k-xanes" / "config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        out["config"] = {"training_seconds": cfg.get("training_seconds"), "n_train": cfg.get("n_train"),
                         "ensemble": len(cfg.get("history", [])) or None,
                         "epochs_run": [h.get("epochs_run") for h in cfg.get("history", [])],
                         "threads": "see scripts/train_fe_model.py (--threads, default 2)"}
    report = ROOT / "docs" / "fe_model.json"
    if report.is_file():
        rep = json.loads(report.read_text())
        shipped = rep.get("shipped", {})
        out["fe_model_json"] = {"train_seconds": shipped.get("train_seconds"), "ensemble": shipped.get("ensemble"),
                                "n_train": shipped.get("n_train")}
    return out


def bench_train(ctx: Context) -> dict:
    result: dict[str, Any] = {"shipped": shipped_training_info()}
    data, reason = ctx.fe_data()
    if data is None:
        return {**result, "skipped": reason}
    import torch
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import KFold
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from xanesnet.bundle import Bundle
    from xanesnet.config import Config, TrainingSettings
    from xanesnet.data.dataset import heldout_mask
    from xanesnet.pipeline import load_feature_file, model_config
    from xanesnet.predict import Predictor
    from xanesnet.training import train

    ts = load_feature_file(feature_npz(ctx, data))
    keep = ~heldout_mask(ts.ids)  # the fixed held-out 10% stays out of every benchmark fit
    x, y = ts.x[keep], ts.y[keep]
    if ctx.size.train_samples and ctx.size.train_samples < len(x):
        pick = np.sort(np.random.default_rng(0).permutation(len(x))[: ctx.size.train_samples])
        x, y = x[pick], y[pick]
    defaults = TrainingSettings()
    epochs = ctx.size.epochs or defaults.epochs
    mlp_kwargs = {"hidden_layer_sizes": (512, 512), "alpha": 1e-4, "batch_size": 32, "learning_rate_init": 1e-3,
                  "max_iter": ctx.size.max_iter}
    result.update({"n_samples": len(x), "n_features": x.shape[1], "n_points": y.shape[1], "folds": ctx.size.folds,
                   "threads": ctx.threads, "ours": {"model": Config().model.to_dict(), "training": {**dataclasses.asdict(defaults), "ensemble": 1,
                                                                                        "epochs": epochs}},
                   "sklearn": {k: list(v) if isinstance(v, tuple) else v for k, v in mlp_kwargs.items()},
                   "per_fold": []})
    names = [f"x{i}" for i in range(x.shape[1])]
    folds = KFold(n_splits=ctx.size.folds, shuffle=True, random_state=0)

    def fit_ours(k: int, tr: np.ndarray, te: np.ndarray, max_epochs: int = epochs) -> dict:
        cfg = Config(descriptor={}, seed=k)
        cfg.training.ensemble = 1
        cfg.training.epochs = max_epochs
        t0 = time.perf_counter()
        trained = train(x[tr], y[tr], cfg, progress=False)
        fit = time.perf_counter() - t0
        config = model_config(trained, ts.energy, names)
        mc = Predictor(Bundle(path=None, config=config, members=trained.members)).predict_features(x[te]).mean
        det_cfg = {**config, "model": {**config["model"], "dropout": 0.0}}  # eval-mode network, one pass
        det = Predictor(Bundle(path=None, config=det_cfg, members=trained.members)).predict_features(x[te]).mean
        return {"fit_s": fit, "mse": float(np.mean((mc - y[te]) ** 2)), "mse_deterministic": float(np.mean((det - y[te]) ** 2)),
                "epochs_run": trained.history[0]["epochs_run"]}

    def fit_sklearn(k: int, tr: np.ndarray, te: np.ndarray) -> dict:
        est = Pipeline([("scale", StandardScaler()), ("mlp", MLPRegressor(**mlp_kwargs, random_state=k))])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            t0 = time.perf_counter()
            est.fit(x[tr], y[tr])
            fit = time.perf_counter() - t0
        pred = est.predict(x[te])
        return {"fit_s": fit, "mse": float(np.mean((pred - y[te]) ** 2)), "n_iter": int(est[-1].n_iter_),
                "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught)}

    log("train", f"{ctx.size.folds}-fold CV on {len(x)} molecules x {x.shape[1]} features -> {y.shape[1]} points, "
                 f"{ctx.threads} thread(s); ours epochs <= {epochs}, sklearn max_iter {ctx.size.max_iter}")
    with single_thread(ctx.threads):
        torch.set_num_threads(ctx.threads)
        with warnings.catch_warnings():  # warm-up, untimed: thread pools and first-call costs of both libraries
            warnings.simplefilter("ignore")
            cfg = Config(descriptor={}, seed=0, training=TrainingSettings(epochs=1, ensemble=1))
            train(x[:20], y[:20], cfg, progress=False)
            MLPRegressor(hidden_layer_sizes=(512, 512), max_iter=1).fit(x[:20], y[:20])
        for k, (tr, te) in enumerate(folds.split(x)):
            order = [("xanesnet", fit_ours), ("sklearn", fit_sklearn)]
            if ctx.size.capped_epochs:
                order.append(("xanesnet_capped", lambda k, tr, te: fit_ours(k, tr, te, ctx.size.capped_epochs)))
            order = order[k % len(order):] + order[: k % len(order)]  # who fits first rotates with the fold
            row: dict[str, Any] = {"fold": k, "n_train": len(tr), "n_test": len(te), "first": order[0][0]}
            for name, fn in order:
                row[name] = fn(k, tr, te)
                log("train", f"fold {k + 1}/{ctx.size.folds} {name}: MSE {row[name]['mse']:.4g} in {row[name]['fit_s']:.1f} s")
            result["per_fold"].append(row)
            ctx.record("train", {**result, "partial": True, "meta": {"size": ctx.size_name}})
    f = result["per_fold"]
    for name in ("xanesnet", "sklearn", *(["xanesnet_capped"] if ctx.size.capped_epochs else [])):
        result[name + "_summary"] = {"mse_mean": float(np.mean([r[name]["mse"] for r in f])), "mse_std": float(np.std([r[name]["mse"] for r in f])),
                                     "fit_s_median": median([r[name]["fit_s"] for r in f]), "fit_s_total": float(sum(r[name]["fit_s"] for r in f))}
    result["xanesnet_summary"]["mse_deterministic_mean"] = float(np.mean([r["xanesnet"]["mse_deterministic"] for r in f]))
    result["ratios"] = {"mse_ours_over_sklearn": summary([r["xanesnet"]["mse"] / r["sklearn"]["mse"] for r in f]),
                        "fit_time_ours_over_sklearn": summary([r["xanesnet"]["fit_s"] / r["sklearn"]["fit_s"] for r in f])}
    if ctx.size.capped_epochs:
        result["capped_epochs"] = ctx.size.capped_epochs
        result["ratios"]["capped: mse_ours_over_sklearn"] = summary([r["xanesnet_capped"]["mse"] / r["sklearn"]["mse"] for r in f])
        result["ratios"]["capped: fit_time_ours_over_sklearn"] = summary([r["xanesnet_capped"]["fit_s"] / r["sklearn"]["fit_s"] for r in f])
    return result


# --------------------------------------------------------------------------------------------------
# 4. theory vs ML
# --------------------------------------------------------------------------------------------------
SMALLTRAIN_SEEDS = (0, 1, 2)
SMALLTRAIN_EXTERNAL = 500  # Fe complexes outside the sample (and outside the Fe model's held-out 10%) to score on


def bench_smalltrain(ctx: Context) -> dict:
    """Default training on the 99-molecule sample: the data-size rules vs the former fixed defaults, three seeds.

    Accuracy is scored twice: on the sample's own held-out 10% (9 molecules, as
    ``xanesnet train --holdout 0.1`` reports it) and, because 9 molecules cannot
    tell two settings apart, on 500 further Fe complexes of the full FDMNES set
    that neither setting saw nor was chosen on (outside the sample and outside
    the Fe model's held-out 10%). The wall time of the real command (a fresh
    ``xanesnet train`` process: import, featurisation, training, saving) is
    measured for the default rules, one run per seed.
    """
    sample = ctx.shared / "fe_k_fdmnes_sample"
    if not (sample / "xyz").is_dir():
        raise SectionSkipped(f"the Fe sample {sample} is not here (expected ../shared/data beside the repository)")
    import resource
    import subprocess

    import torch

    from xanesnet.config import Config
    from xanesnet.experiments import fe_subset, unseen_fe_draws
    from xanesnet.pipeline import build_training_set, train_model
    from xanesnet.predict import Predictor

    archive = ctx.shared / "fe_k_fdmnes_train.tar.gz"
    if not archive.is_file():
        raise SectionSkipped(f"the full Fe set {archive} is not here (expected ../shared/data beside the repository)")
    data = build_training_set(sample / "xyz", sample / "xanes", Config(), cache=ctx.work / "sample_features.h5")
    seeds = SMALLTRAIN_SEEDS if not ctx.size.epochs else SMALLTRAIN_SEEDS[:1]  # a smoke run: one seed, a few epochs
    n_external = SMALLTRAIN_EXTERNAL if not ctx.size.epochs else 40
    # the second of the draws scripts/small_data_rules.py makes: the first chose the rules, this one only reports
    _, chosen = unseen_fe_draws(data.ids, [SMALLTRAIN_EXTERNAL, n_external], archive=archive)
    external = fe_subset(chosen, Config(), ctx.work / "smalltrain_external", cache=ctx.work / "external_features.h5",
                         archive=archive)
    threads = torch.get_num_threads()
    contenders = {"data-size rules (default)": {}, "previous fixed defaults": PREVIOUS_TRAINING_DEFAULTS}
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    for seed in seeds:
        for name in (list(contenders) if seed % 2 == 0 else list(contenders)[::-1]):
            cfg = Config(seed=seed)
            for key, value in contenders[name].items():
                setattr(cfg.training, key, value)
            if ctx.size.epochs:  # a smoke run: a few epochs of one member
                cfg.training.epochs, cfg.training.ensemble = ctx.size.epochs, 1
            torch.set_num_threads(threads)
            log("smalltrain", f"{name}, seed {seed}")
            out = ctx.work / "smalltrain" / f"seed{seed}_{abs(hash(name)) % 1000}"
            wall, cpu = time.perf_counter(), time.process_time()
            saved = train_model(data, cfg, out, holdout=0.1, progress=False)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            m = saved["holdout_metrics"]
            pred = Predictor.from_bundle(out).predict_features(external.x, ids=external.ids)
            runs[name].append({"seed": seed, "wall_s": wall, "cpu_s": cpu, "heldout_mse": m["mse"], "heldout_rse": m["rse"],
                               "n_heldout": m["n"], "n_train": saved["n_train"],
                               "external_mse": float(np.mean((pred.mean - external.y) ** 2)),
                               "epochs_run": [h["epochs_run"] for h in saved["history"]],
                               "training": {k: saved["training"][k] for k in ("batch_size", "patience", "val_fraction", "threads")}})
    torch.set_num_threads(threads)
    command = [shutil.which("xanesnet") or "xanesnet", "train", "--xyz", str(sample / "xyz"), "--spectra", str(sample / "xanes"), "--holdout", "0.1",
               "--no-progress"]
    cli = []
    for seed in seeds if not ctx.size.epochs else ():
        log("smalltrain", f"the command itself, seed {seed}")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        subprocess.run([*command, "--seed", str(seed), "--out", str(ctx.work / "smalltrain" / f"cli{seed}")],
                       check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli.append({"seed": seed, "wall_s": time.perf_counter() - wall,
                    "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)})
    new, old = runs["data-size rules (default)"], runs["previous fixed defaults"]
    return {"data": "Fe FDMNES sample (fe_k_fdmnes_sample), held-out 10% by name hash; external: "
                    f"{n_external} further Fe complexes of the full set (outside the sample and the full set's "
                    "held-out 10%, and apart from the draw the rules were chosen on: xanesnet.experiments.unseen_fe_draws)",
            "n_molecules": len(data.ids), "n_external": len(external.ids), "seeds": list(seeds),
            "command": "xanesnet train --xyz ../shared/data/fe_k_fdmnes_sample/xyz --spectra "
                       "../shared/data/fe_k_fdmnes_sample/xanes --holdout 0.1 --seed SEED --out MODEL",
            "torch_default_threads": threads, "runs": runs, "cli": cli,
            "cli_wall_s_median": median([c["wall_s"] for c in cli]) if cli else None,
            "cli_cpu_s_median": median([c["cpu_s"] for c in cli]) if cli else None,
            "wall_s_median": {k: median([r["wall_s"] for r in v]) for k, v in runs.items()},
            "cpu_s_median": {k: median([r["cpu_s"] for r in v]) for k, v in runs.items()},
            "wall_ratio_new_over_old": median([a["wall_s"] / b["wall_s"] for a, b in zip(new, old)]),
            "cpu_ratio_new_over_old": median([a["cpu_s"] / b["cpu_s"] for a, b in zip(new, old)]),
            "heldout_mse": {k: float(np.mean([r["heldout_mse"] for r in v])) for k, v in runs.items()},
            "external_mse": {k: float(np.mean([r["external_mse"] for r in v])) for k, v in runs.items()},
            "external_ratio_new_over_old": [a["external_mse"] / b["external_mse"] for a, b in zip(new, old)]}


def read_feff_index(path: Path) -> dict[str, dict]:
    import csv

    per: dict[str, dict] = {}
    with open(path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            d = per.setdefault(row["metal"], {"xanes": [], "xes": [], "natoms": [], "csd": []})
            d["xanes"].append(float(row["seconds_xanes"]))
            d["xes"].append(float(row["seconds_xes"]))
            d["natoms"].append(int(row["natoms"]))
            d["csd"].append(row["csd"])
    return per


def single_member(predictor):
    """The ensemble's first network alone, one deterministic pass (no MC dropout, no calibration)."""
    from xanesnet.bundle import Bundle
    from xanesnet.predict import Predictor

    cfg = predictor.bundle.config
    cfg = {**cfg, "model": {**cfg["model"], "dropout": 0.0}, "uncertainty": {}}
    return Predictor(Bundle(path=predictor.bundle.path, config=cfg, members=predictor.bundle.members[:1]))


def find_gpr_models() -> list[Path]:
    found = []
    for cfg in sorted((ROOT / "models").glob("*/config.json")):
        try:
            if json.loads(cfg.read_text()).get("model", {}).get("kind") == "gpr":
                found.append(cfg.parent)
        except (OSError, json.JSONDecodeError):
            continue
    return found


def spectrum_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    a = y_true - y_true.mean(1, keepdims=True)
    b = y_pred - y_pred.mean(1, keepdims=True)
    r = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return {"mse": float(np.mean((y_pred - y_true) ** 2)), "pearson_r_median": float(np.median(r))}


def bench_theory(ctx: Context, results: dict) -> dict:
    index = ctx.shared / "feff_3d" / "index.tsv"
    result: dict[str, Any] = {}
    if not index.is_file():
        return {"skipped": f"FEFF10 timings {index} are not here (expected ../shared/data beside the repository)"}
    feff = read_feff_index(index)
    result["feff"] = {m: {"n": len(d["xanes"]), "xanes_s_median": median(d["xanes"]), "xes_s_median": median(d["xes"]),
                          "natoms_median": median(d["natoms"])} for m, d in sorted(feff.items(), key=lambda kv: METALS.index(kv[0]))}
    all_x = [s for d in feff.values() for s in d["xanes"]]
    all_e = [s for d in feff.values() for s in d["xes"]]
    result["feff_all"] = {"n": len(all_x), "xanes_s_median": median(all_x), "xes_s_median": median(all_e),
                          "note": "FEFF10 via feff10-rs 0.2.4, two runs in parallel on a 2-core machine (feff_3d/README.md)"}

    from xanesnet.data.dataset import featurize_files
    from xanesnet.predict import Predictor

    model, info = ctx.model()
    result["model"] = portable(model)
    result["model_info"] = info
    predictor = Predictor.from_bundle(model)
    single = single_member(predictor)
    gprs = find_gpr_models()
    gpr = Predictor.from_bundle(gprs[0]) if gprs else None
    result["gpr"] = {"model": str(gprs[0])} if gprs else {
        "note": "no model with config kind 'gpr' in models/: the Gaussian-process baseline bar is left out"}
    methods = {"ensemble": predictor, "single MLP": single, **({"GPR": gpr} if gpr is not None else {})}
    result["ensemble_size"] = len(predictor.bundle.members)

    # time per molecule per metal: featurize + predict, the methods alternating, one thread
    timing: dict[str, dict] = {}
    with single_thread(ctx.threads):
        for metal in METALS:
            files = sorted((ctx.shared / "feff_3d" / metal / "xyz").glob("*.xyz"))[: ctx.size.metal_molecules or None]
            if not files:
                continue
            for method in methods.values():  # warm-up
                method.predict_files(files[:2], skip_bad=True)
            per = {name: [] for name in methods}
            for r in range(max(1, ctx.size.batch_repeats)):
                names = list(methods)[r % len(methods):] + list(methods)[: r % len(methods)]
                for name in names:
                    t0 = time.perf_counter()
                    pred, skipped = methods[name].predict_files(files, skip_bad=True)
                    per[name].append((time.perf_counter() - t0) / max(1, len(pred.ids)) * 1e3)
            timing[metal] = {name: median(v) for name, v in per.items()} | {"n": len(files), "skipped": len(skipped)}
            log("theory", f"{metal}: " + ", ".join(f"{k} {v:.3f} ms/mol" for k, v in timing[metal].items() if k in methods))
    result["ml_ms_per_molecule"] = timing
    result["ml_ms_all"] = {name: median([t[name] for t in timing.values()]) for name in methods} if timing else {}
    cold = results.get("sections", {}).get("predict", {}).get("cold_start_s", {}).get("xanesnet predict (1 molecule)")
    result["cold_start_s"] = cold["median"] if cold else None

    # accuracy on the held-out Fe FDMNES molecules
    data, reason = ctx.fe_data()
    if data is None:
        result["accuracy_skipped"] = reason
    else:
        from xanesnet.data.dataset import heldout_mask, load_spectra

        paths = sorted(data.xyz.glob("*.xyz"))
        held = predictor.bundle.config.get("holdout", {}).get("ids")
        if held and info["shipped"]:
            held = set(held)
            paths = [p for p in paths if p.stem in held]
            rule = "the model's recorded held-out ids"
        else:
            paths = [p for p, h in zip(paths, heldout_mask([p.stem for p in paths])) if h]
            rule = "sha256(name) mod 1000 < 100"
        paths = [p for p in paths if (data.spectra / f"{p.stem}.txt").is_file()]
        feats = featurize_files(paths, predictor.descriptor)
        energy, y = load_spectra([data.spectra / f"{i}.txt" for i in feats.ids])
        if len(energy) != len(predictor.energy) or not np.allclose(energy, predictor.energy, atol=1e-6):
            result["accuracy_skipped"] = "the reference spectra's grid is not the model's"
        else:
            ens = predictor.predict_features(feats.x)
            acc = {"ensemble": spectrum_metrics(y, ens.mean), "single MLP": spectrum_metrics(y, ens.samples[0])}
            members = [spectrum_metrics(y, s)["mse"] for s in ens.samples[: len(predictor.bundle.members)]]
            acc["single MLP"]["member_mse_mean"] = float(np.mean(members))
            acc["single MLP"]["member_mse_std"] = float(np.std(members))
            if gpr is not None:
                gf = featurize_files(paths, gpr.descriptor)
                acc["GPR"] = spectrum_metrics(y, gpr.predict_features(gf.x).mean)
                gheld = gpr.bundle.config.get("holdout", {}).get("ids")
                if not gheld or not set(feats.ids) <= set(gheld):
                    acc["GPR"]["note"] = "the GPR model's recorded held-out set does not cover these molecules"
            result["accuracy"] = {"data": data.label, "n": len(feats.ids), "rule": rule, "methods": acc,
                                  "feff_note": "FEFF10 has no bar: it is another theory, not a fit to FDMNES; with the "
                                               "feff_3d settings it matches FDMNES with a median Pearson r of 0.94 on 21 Fe "
                                               "complexes after a -1.25 eV shift (feff_3d/README.md)"}
            log("theory", f"held-out ({len(feats.ids)}): " + ", ".join(f"{k} MSE {v['mse']:.3g}" for k, v in acc.items()))

    # optional live FEFF10 runs through `xanesnet simulate`
    if ctx.size.feff_runs > 0:
        try:
            import feff10  # noqa: F401
        except ImportError:
            result["feff_live_skipped"] = "feff10 is not installed (pip install xanesnet[simulate])"
        else:
            fe = feff.get("Fe")
            order = np.argsort(fe["natoms"]) if fe else []
            live = []
            for i in list(order[len(order) // 2: len(order) // 2 + ctx.size.feff_runs]):
                csd = fe["csd"][i]
                xyz = ctx.shared / "feff_3d" / "Fe" / "xyz" / f"{csd}.xyz"
                run_dir = Path(tempfile.mkdtemp(prefix=f"feff-live-{csd}-", dir=ctx.work))  # the h5 and its lock/parts
                log("theory", f"live FEFF10 XANES of {csd} ({fe['natoms'][i]} atoms)")
                m = run_measured([*xanesnet_command(), "simulate", str(xyz), "--out", str(run_dir / "feff.h5"), "--spectrum", "xanes",
                                  "--no-progress"])
                shutil.rmtree(run_dir, ignore_errors=True)
                live.append({"csd": csd, "natoms": fe["natoms"][i], "wall_s": m.wall, "index_s": fe["xanes"][i], "returncode": m.returncode})
            result["feff_live"] = live
    return result


# --------------------------------------------------------------------------------------------------
# figures and report
# --------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_featurize(res: dict, path: Path) -> None:
    plt = _plt()
    ms = res["ms_per_molecule"]
    names = list(ms)
    vals = [ms[n]["median"] for n in names]
    err = np.array([[ms[n]["median"] - ms[n]["min"] for n in names], [ms[n]["max"] - ms[n]["median"] for n in names]])
    refs = list(REFERENCE_MS.items())
    fig, ax = plt.subplots(figsize=(8, 0.42 * (len(names) + len(refs)) + 1.2))
    y = np.arange(len(names))
    colours = ["C0" if n.startswith("xanesnet") else "C1" if n.startswith("dscribe") else "C2" for n in names]
    ax.barh(y, vals, xerr=err, color=colours)
    yr = np.arange(len(names), len(names) + len(refs))
    ax.barh(yr, [v for _, v in refs], color="0.85", hatch="//", edgecolor="0.5")
    ax.set_yticks(list(y) + list(yr), names + [f"{k} (reference machine)" for k, _ in refs])
    for yy, v in zip(list(y) + list(yr), vals + [v for _, v in refs]):
        ax.text(v, yy, f" {v:.3g}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(vals + [v for _, v in refs]) * 1.15)
    ax.set_xlabel("ms per molecule (median over repeats, one core)")
    ax.set_title(f"Featurisation, {res['n_molecules']} Fe complexes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def figure_theory(res: dict, path: Path) -> None:
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    methods = ["FEFF10", "single MLP", "ensemble", "GPR"]
    colours = {"FEFF10": "C3", "single MLP": "C0", "ensemble": "C1", "GPR": "C2"}
    # time per spectrum, log scale; error bars span the per-metal medians
    feff = res["feff"]
    per_metal = {"FEFF10": [v["xanes_s_median"] for v in feff.values()]}
    for name in ("single MLP", "ensemble", "GPR"):
        vals = [t[name] / 1e3 for t in res.get("ml_ms_per_molecule", {}).values() if name in t]
        if vals:
            per_metal[name] = vals
    from matplotlib.transforms import blended_transform_factory

    x = np.arange(len(methods))
    if res.get("cold_start_s"):  # behind the ensemble's bar: one molecule from a cold start, start-up included
        c = res["cold_start_s"]
        ax1.bar(2, c, fill=False, hatch="//", edgecolor="C1", label="one molecule, cold start (incl. start-up)")
        ax1.text(2, c * 1.6, f"{c:.2g} s", ha="center", fontsize=8)
    for i, name in enumerate(methods):
        if name not in per_metal:
            ax1.text(i, 0.05, "no GPR model\nin models/", ha="center", va="bottom", fontsize=8, color="0.4",
                     transform=blended_transform_factory(ax1.transData, ax1.transAxes))
            continue
        v = per_metal[name]
        mid = median(v)
        ax1.bar(i, mid, color=colours[name], yerr=[[mid - min(v)], [max(v) - mid]], capsize=3)
        ax1.text(i, mid * 1.6, f"{mid:.2g} s" if mid >= 0.1 else f"{mid * 1e3:.2g} ms", ha="center", fontsize=8)
    ax1.set_yscale("log")
    ax1.set_ylim(top=ax1.get_ylim()[1] * 3)
    if res.get("cold_start_s"):
        ax1.legend(loc="upper right", fontsize=8)
    ax1.set_xticks(x, ["FEFF10\n(XANES)", "single MLP", f"ensemble\n({res.get('ensemble_size', '?')} MLPs)", "GPR"])
    ax1.set_ylabel("seconds per spectrum (one core)")
    ax1.set_title("Time per spectrum: median over metals\n(bars: range of per-metal medians)", fontsize=10)
    # accuracy on the Fe FDMNES held-out set
    acc = res.get("accuracy", {}).get("methods", {})
    for i, name in enumerate(methods):
        if name in acc:
            v = acc[name]["mse"]
            ax2.bar(i, v, color=colours[name])
            ax2.text(i, v, f"{v:.2e}\nr={acc[name]['pearson_r_median']:.3f}", ha="center", va="bottom", fontsize=8)
        else:
            label = "n/a: another theory\n(r=0.94 vs FDMNES,\n21 Fe; feff_3d/README)" if name == "FEFF10" else "no GPR model\nin models/"
            ax2.text(i, 0.05, label, ha="center", va="bottom", fontsize=7, color="0.4",
                     transform=blended_transform_factory(ax2.transData, ax2.transAxes))
    ax2.set_xticks(x, ["FEFF10", "single MLP", "ensemble", "GPR"])
    ax2.set_ylabel("MSE vs FDMNES (held-out Fe)")
    n = res.get("accuracy", {}).get("n")
    ax2.set_title(f"Accuracy on {n} held-out Fe complexes\n(r: median per-spectrum Pearson)" if n else "Accuracy: no reference data", fontsize=10)
    ax2.margins(y=0.25)
    ax1.set_xlim(-0.7, len(methods) - 0.3)
    ax2.set_xlim(-0.7, len(methods) - 0.3)
    if not res.get("model_info", {}).get("shipped", True):
        fig.text(0.5, 0.01, "stand-in model (models/fe-k-xanes absent): accuracy not representative", ha="center", color="C3", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def figure_train(res: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, colour, label in (("xanesnet", "C0", "xanesnet (1 MLP, early stopping)"), ("sklearn", "C1", "sklearn MLPRegressor"),
                                ("xanesnet_capped", "C2", f"xanesnet, <= {res.get('capped_epochs')} epochs")):
        if not all(name in r for r in res["per_fold"]):
            continue
        t = [r[name]["fit_s"] for r in res["per_fold"]]
        m = [r[name]["mse"] for r in res["per_fold"]]
        ax.scatter(t, m, color=colour, label=label)
    ax.set_xlabel("fit time per fold (s)")
    ax.set_ylabel("test MSE per fold")
    ax.set_title(f"{res['folds']}-fold CV, {res['n_samples']} Fe complexes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


def _load_line(meta: dict) -> str:
    if not meta:
        return ""
    lb, la = meta.get("load_before", [0, 0, 0]), meta.get("load_after", [0, 0, 0])
    state = "**busy machine** (other jobs running; absolute times are inflated, ratios less so)" if meta.get("busy") else "quiet machine"
    smoke = " `--size tiny` is a smoke run on a handful of molecules: its numbers mean nothing." if meta.get("size") == "tiny" else ""
    commit = f" at commit {meta['commit'][:12]}" if meta.get("commit") else ""
    return (f"_Measured {meta.get('when', '?')}{commit} with `--size {meta.get('size')}`, {state}: load average "
            f"{lb[0]:.2f} before, {la[0]:.2f} after, on {meta.get('cores')} cores. Command: `{meta.get('command', '')}`.{smoke}_\n")


def render_markdown(results: dict, out: Path) -> str:
    m, v = results.get("machine", {}), results.get("versions", {})
    sec = results.get("sections", {})
    lines = ["# Benchmarks", "",
             "Written by `scripts/benchmark.py` from `benchmarks.json`; do not edit by hand. Re-run with",
             "", "```bash", "python scripts/benchmark.py --size full --sections featurize,predict,screen,theory",
             "nohup python scripts/benchmark.py --size full --sections train > benchmark_train.log 2>&1 &   # long",
             "```", "",
             "How we measure: the contenders of each comparison run in the same process, taking turns in rotating order "
             "(chunks of molecules, or subprocess runs), and we report medians over repeats and the median of the "
             "per-repeat ratios; the load average is recorded per section. The machine is shared, so look at the ratios first.",
             "", "## Machine and versions", "",
             f"- {m.get('nproc')} cores ({m.get('cpu')}), {m.get('ram_gb')} GB RAM, {m.get('platform')}",
             "- " + ", ".join(f"{k} {val}" for k, val in v.items() if val), ""]
    lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += _target_rows(sec)
    lines.append("")
    for name, render in (("featurize", _md_featurize), ("predict", _md_predict), ("screen", _md_screen), ("train", _md_train),
                         ("theory", _md_theory), ("smalltrain", _md_smalltrain)):
        res = sec.get(name)
        if res is None:
            continue
        if "skipped" in res:
            lines += [f"## {_TITLES[name]}", "", f"Skipped: {res['skipped']}", ""]
            continue
        try:
            lines += render(res, out)
        except KeyError as exc:  # a section in the JSON from before its format changed: the others still render
            lines += [f"## {_TITLES[name]}", "", f"This section's results were written by an earlier version of the script "
                      f"(no {exc}); re-run `--sections {name}`.", ""]
    return "\n".join(lines) + "\n"


_TITLES = {"featurize": "1. Featurisation", "predict": "2. Prediction", "screen": "2b. Screening a library into one file",
           "train": "3. Training", "theory": "4. Theory vs ML",
           "smalltrain": "5. Training on a small data set"}


def _md_smalltrain(res: dict, out: Path) -> list[str]:
    old_threads = res["runs"]["previous fixed defaults"][0]["training"]["threads"]
    lines = [f"## {_TITLES['smalltrain']}", "", _load_line(res.get("meta", {})),
             f"`{res['command']}` ({res['n_molecules']} molecules with spectra; the default network and ensemble): the "
             "defaults now scale with the data size (`TrainingSettings.for_size`: batch size, patience, validation share, "
             f"threads) against the former fixed defaults (batch 64, patience 50, 10% validation, {old_threads} threads: "
             f"torch's default, one per core), seeds {', '.join(map(str, res['seeds']))}, taking turns, in one process. "
             "Accuracy is the MSE on the sample's own held-out 10% "
             f"({res['runs']['previous fixed defaults'][0]['n_heldout']} molecules, too few to tell settings apart) and on "
             f"{res['n_external']} further Fe complexes of the full FDMNES set that neither setting saw and nothing was "
             "chosen on (outside the sample and outside the Fe model's held-out 10%).",
             "", "| settings | batch | patience | validation | threads | wall s (median) | CPU s (median) | epochs per member "
             "(first seed) | held-out MSE (mean) | external MSE (mean of seeds) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in res["runs"].items():
        t = runs[0]["training"]
        lines.append(f"| {name} | {t['batch_size']} | {t['patience']} | {t['val_fraction']:.3f} | {t['threads'] or 'default'} | "
                     f"{res['wall_s_median'][name]:.1f} | {res['cpu_s_median'][name]:.1f} | {runs[0]['epochs_run']} | "
                     f"{res['heldout_mse'][name]:.4g} | {res['external_mse'][name]:.4g} |")
    ratios = ", ".join(f"{r:.3f}" for r in res["external_ratio_new_over_old"])
    lines += ["", f"Per-seed ratios (median): wall {res['wall_ratio_new_over_old']:.2f}x, CPU "
                  f"{res['cpu_ratio_new_over_old']:.2f}x the former defaults; external MSE, new / former, per seed: {ratios}."]
    if res.get("cli"):
        walls = ", ".join(f"{c['wall_s']:.1f}" for c in res["cli"])
        lines += ["", f"The command itself (a fresh process: import, featurisation of the {res['n_molecules']} molecules, "
                      f"training, calibration, saving), default rules: {res['cli_wall_s_median']:.1f} s wall median "
                      f"({walls} s for the seeds), {res['cli_cpu_s_median']:.1f} s CPU."]
    return lines + [""]


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _target_rows(sec: dict) -> list[str]:
    rows = []
    f = sec.get("featurize", {})
    r = f.get("ratios", {}).get("dscribe end to end / ours (xanesnet-2021)")
    if r:
        gap = "" if r["median"] >= TARGETS["featurize_speedup_vs_dscribe"] else \
            f" (gap: {TARGETS['featurize_speedup_vs_dscribe'] / r['median']:.1f}x; reading the file is most of ours, see section 1)"
        rows.append(f"| featurisation >= 5x faster than dscribe, end to end (files read) | {r['median']:.1f}x "
                    f"({f['ms_per_molecule']['xanesnet wACSF xanesnet-2021, end to end']['median']:.3f} vs "
                    f"{f['ms_per_molecule']['dscribe ACSF, end to end (ase.io.read + create)']['median']:.3f} ms/mol) | "
                    f"{_yes(r['median'] >= TARGETS['featurize_speedup_vs_dscribe'])}{gap} |")
    p = sec.get("predict", {})
    if "cold_start_s" in p:
        c = p["cold_start_s"]["xanesnet predict (1 molecule)"]["median"]
        t = p["cold_start_s"]['python -c "import torch"']["median"]
        rt = p["cold_start_vs_torch"]["median"]
        why = f" (gap {c - TARGETS['cold_start_s']:.1f} s: `import torch` alone takes {t:.2f} s here"
        ph = p.get("phases_s", {})
        if ph:
            why += f"; interpreter start-up + teardown with torch loaded ~{ph.get('interpreter start-up and exit', 0):.1f} s"
        if WHATIF in p["cold_start_s"]:
            why += f"; with the section 2 what-if: {p['cold_start_s'][WHATIF]['median']:.2f} s"
        why += ")"
        rows.append(f"| cold start <= 1.5 s (XANESNET tool ~{XANESNET_TOOL_COLD_START_S} s) | {c:.2f} s | {_yes(c <= TARGETS['cold_start_s'])}"
                    f"{'' if c <= TARGETS['cold_start_s'] else why} |")
        rows.append(f"| cold start <= 1.3x `import torch` | {rt:.2f}x ({c:.2f} vs {t:.2f} s) | {_yes(rt <= TARGETS['cold_start_vs_torch'])} |")
    if "batch" in p:
        b = p["batch"]["mol_per_s"]["median"]
        fs, ns = p["batch"]["featurize_s"]["median"], p["batch"]["networks_s"]["median"]
        load = p.get("meta", {}).get("load_before", [0])[0]
        why = "" if b >= TARGETS["batch_mol_per_s"] else (
            f" (gap {TARGETS['batch_mol_per_s'] / b:.1f}x, wall time with load average {load:.0f} on 2 cores; featurisation "
            f"{fs / (fs + ns):.0%} of the time, {fs / p['batch']['n_molecules'] * 1e3:.2f} ms/molecule; see section 2b)")
        rows.append(f"| batch >= 2,000 molecules/s after start-up | {b:,.0f}/s (best repeat {p['batch']['mol_per_s']['max']:,.0f}/s; "
                    f"{p['batch']['n_molecules']} molecules, {p['batch']['threads']} thread) | {_yes(b >= TARGETS['batch_mol_per_s'])}{why} |")
    if "cli_batch" in p:
        mem = p["cli_batch"]["maxrss_mb"]
        rows.append(f"| peak memory of the batch < 1 GB | {mem:.0f} MB | {_yes(mem < TARGETS['peak_memory_mb'])} |")
    rows += _screen_target_rows(sec.get("screen", {}))
    t = sec.get("train", {})
    if "ratios" in t:
        mr, tr = t["ratios"]["mse_ours_over_sklearn"]["median"], t["ratios"]["fit_time_ours_over_sklearn"]["median"]
        ok = mr < 1 and tr <= TARGETS["train_time_ratio"]
        ep = [r["xanesnet"]["epochs_run"] for r in t["per_fold"]]
        it = [r["sklearn"]["n_iter"] for r in t["per_fold"]]
        why = "" if ok else (f" (time: early stopping with patience {t['ours']['training'].get('patience')} runs {min(ep)}-{max(ep)} "
                             f"epochs, sklearn stops itself after {min(it)}-{max(it)})" if tr > TARGETS["train_time_ratio"] else "")
        rows.append(f"| training: lower MSE than sklearn at <= half its fit time | MSE ratio {mr:.2f}, time ratio {tr:.2f} "
                    f"(size {t.get('meta', {}).get('size')}) | {_yes(ok)}{why} |")
        if "capped: mse_ours_over_sklearn" in t["ratios"]:
            cm, ct = t["ratios"]["capped: mse_ours_over_sklearn"]["median"], t["ratios"]["capped: fit_time_ours_over_sklearn"]["median"]
            rows.append(f"| same, ours capped at {t.get('capped_epochs')} epochs | MSE ratio {cm:.2f}, time ratio {ct:.2f} | "
                        f"{_yes(cm < 1 and ct <= TARGETS['train_time_ratio'])} |")
    st = sec.get("smalltrain", {})
    if "external_mse" in st:
        name, old = "data-size rules (default)", "previous fixed defaults"
        wall = st["cli_wall_s_median"] if st.get("cli_wall_s_median") is not None else st["wall_s_median"][name]
        mse, mse_old = st["external_mse"][name], st["external_mse"][old]
        ok = wall <= TARGETS["small_train_s"] and mse <= mse_old
        rows.append(f"| default `xanesnet train` on the 99-molecule sample in <= {TARGETS['small_train_s']:.0f} s, held-out MSE no "
                    f"worse than the former defaults | {wall:.1f} s wall for the command (former defaults: "
                    f"{st['wall_s_median'][old]:.1f} s to train), MSE on {st['n_external']} unseen Fe complexes {mse:.3g} vs "
                    f"{mse_old:.3g} (mean of {len(st['seeds'])} seeds; size {st.get('meta', {}).get('size')}) | "
                    f"{_yes(ok)}{_small_train_why(wall, mse, mse_old)} |")
    if not rows:
        rows.append("| (no section run yet) | | |")
    return rows


def _small_train_why(wall: float, mse: float, mse_old: float) -> str:
    why = (["wall time on a busy machine; see CPU time"] if wall > TARGETS["small_train_s"] else []) + (
        [f"held-out MSE {mse / mse_old - 1:.1%} higher"] if mse > mse_old else [])
    return f" ({'; '.join(why)})" if why else ""


def _md_featurize(res: dict, out: Path) -> list[str]:
    ms = res["ms_per_molecule"]
    lines = [f"## {_TITLES['featurize']}", "", _load_line(res.get("meta", {})),
             f"{res['n_molecules']} molecules ({res['data']}), one core (torch and BLAS limited to one thread). "
             "End to end includes reading the file. dscribe's ACSF has the same eta/mu as `xanesnet-2021` "
             f"(32 G2, 64 G4, r_cut 6 A) on the {len(res['species'])} elements present "
             f"(Z = {', '.join(map(str, res['species']))}), so it computes {res.get('dscribe_features', '?')} features per "
             "molecule (per element and element pair) where we compute 97; ase reads symbol-xyz copies of the same files "
             "(ase cannot read the atomic-number files).", "",
             "| contender | ms/molecule (median) | min | max |", "|---|---|---|---|"]
    for name, s in ms.items():
        lines.append(f"| {name} | {s['median']:.3f} | {s['min']:.3f} | {s['max']:.3f} |")
    for name, val in REFERENCE_MS.items():
        lines.append(f"| {name} (reference numbers, same machine type) | {val} | | |")
    lines += ["", "| ratio (per repeat, median) | value |", "|---|---|"]
    lines += [f"| {k} | {r['median']:.2f}x (range {r['min']:.2f}-{r['max']:.2f}) |" for k, r in res.get("ratios", {}).items()]
    if "ase.io.read (I/O floor)" in ms:
        a = ms["ase.io.read (I/O floor)"]["median"]
        factor = a / REFERENCE_MS["ase.io.read"]
        ours = ms["xanesnet wACSF xanesnet-2021, end to end"]["median"]
        lines += ["", f"This machine's `ase.io.read` takes {a:.3f} ms per file against {REFERENCE_MS['ase.io.read']} ms on the "
                      f"reference machine (factor {factor:.2f}). Scaled by that factor, the XANESNET tool's wACSF would take "
                      f"{REFERENCE_MS['XANESNET tool wACSF'] * factor:.2f} ms here: ours end to end is "
                      f"{REFERENCE_MS['XANESNET tool wACSF'] * factor / ours:.1f}x faster than that."]
    eq = res.get("equivalence")
    if eq:
        lines += ["", "Equivalence with dscribe (per family: max over molecules of max|ours - weighted dscribe sum| / max|ours|; "
                      "G1 = sum over elements, G2 = sum of Z-weighted per-element G2, G4 = sum of w_a w_b-weighted per-pair G4):", "",
                  "| preset | molecules | G1 | G2 | G4 |", "|---|---|---|---|---|"]
        for name, e in eq.items():
            d = e["max_rel_diff"]
            lines.append(f"| {name} (cutoff {'clipped' if e['clip_cutoff'] else 'not clipped past r_max'}) | {e['n_molecules']} | "
                         f"{d['G1']:.1e} | {d['G2']:.1e} | {d['G4']:.1e} |")
        lines += ["", "dscribe's G4 is `2^(1-zeta) (1 + lambda cos)^zeta exp(-eta (r_ij^2 + r_ik^2 + r_jk^2)) fc_ij fc_ik fc_jk`, "
                      "the centred (mu = 0) form we use, and it drops pairs with r_jk > r_cut. So the weighted sum reproduces "
                      "our G4 to rounding when our cutoff is clipped (`plain`, `default`); for the published presets, whose "
                      "`fc(r_jk)` rises again past r_max, the difference is the (small, for their narrow G4 widths) "
                      "contribution of pairs more than r_max apart."]
    if (out / "benchmark_featurize.png").is_file():
        lines += ["", "![featurisation](benchmark_featurize.png)"]
    return lines + [""]


def _screen_target_rows(sc: dict) -> list[str]:
    rows = []
    lib = sc.get("library")
    if lib:
        rate, mem, cpu_s = lib["mol_per_s"]["median"], lib["peak_pss_mb"], lib["cpu_s"]["median"]
        ok = rate >= TARGETS["batch_mol_per_s"] and sc.get("present") == lib["n_molecules"]
        load = sc.get("meta", {}).get("load_before", [0])[0]
        why = "" if ok else f" (machine shared: load average {load:.0f} on 2 cores while measured)"
        rows.append(f"| {lib['n_molecules']:,} tmQM complexes into one HDF5 file >= 2,000 molecules/s wall, all present | "
                    f"{rate:,.0f}/s ({lib['wall_s']['median']:.1f} s, start-up included); {sc.get('present'):,} present | "
                    f"{_yes(ok)}{why} |")
        rows.append(f"| same run, from its CPU time (what two idle cores would give) | {cpu_s:.1f} CPU s: "
                    f"{2 * lib['n_molecules'] / cpu_s:,.0f}/s on 2 idle cores | "
                    f"{_yes(2 * lib['n_molecules'] / cpu_s >= TARGETS['batch_mol_per_s'])} (an estimate, not a measurement) |")
        rows.append(f"| same run, peak memory <= 1.5 GB (whole process tree, PSS) | {mem:,.0f} MB | "
                    f"{_yes(mem <= TARGETS['screen_memory_mb'])} |")
    fp = sc.get("featurize_processes", {})
    if "ratio_dscribe_over_ours" in fp:
        r = fp["ratio_dscribe_over_ours"]["median"]
        w = fp["wall_s"]
        rows.append(f"| featurisation of {fp['n_molecules']:,} Fe complexes >= 5x faster than dscribe ACSF (same G2/G4), whole "
                    f"processes on one core | {r:.1f}x ({w['xanesnet featurize (xanesnet-2021)']['median']:.2f} vs "
                    f"{w['dscribe ACSF script']['median']:.2f} s) | {_yes(r >= TARGETS['featurize_speedup_vs_dscribe'])} |")
    return rows


def _md_screen(res: dict, out: Path) -> list[str]:
    lines = [f"## {_TITLES['screen']}", "", _load_line(res.get("meta", {})), ""]
    if "error" in res:
        return lines + [f"Error: {res['error']}", ""]
    lib = res.get("library")
    if lib is None:
        lines += [f"Skipped: {res.get('library_skipped')}", ""]
    else:
        lines += [f"{lib['n_molecules']:,} molecules ({lib['data']}), files in the page cache; each command is a whole "
                  "`xanesnet` process (start-up, model loading and writing included). Memory: the peak over the run of "
                  "the summed PSS (proportional set size: shared pages counted once) of the process and all its children, "
                  "sampled every 0.1 s (RSS summed the same way beside it). CPU s: user + system CPU time of the whole "
                  "process tree, which does not depend on what else the machine runs; on two otherwise idle cores the "
                  "run would take about CPU s / 2 (it keeps both busy).", "",
                  "| command | wall s | molecules/s | CPU s | peak PSS MB | peak RSS MB |", "|---|---|---|---|---|---|",
                  f"| `{lib['command']}` | {lib['wall_s']['median']:.1f} | {lib['mol_per_s']['median']:,.0f} | "
                  f"{lib['cpu_s']['median']:.1f} | {lib['peak_pss_mb']:,.0f} | {lib['peak_rss_mb']:,.0f} |", "",
                  f"The file holds {res.get('present'):,} molecules ({res.get('skipped_bad', 0)} skipped as bad input), "
                  f"{res.get('file_mb', 0):.0f} MB; groups: "
                  + ", ".join(f"{k} {v:,}" for k, v in sorted(res.get("groups", {}).items())) + ".", ""]
        base = res.get("baseline")
        if base:
            lines += [f"Against today's per-file text output, on the first {base['n_molecules']:,} molecules of the library "
                      "(contenders alternating):", "", "| command | wall s | CPU s | peak PSS MB |", "|---|---|---|---|"]
            lines += [f"| `{cmd}` | {base['wall_s'][k]['median']:.1f} | {base['cpu_s'][k]['median']:.1f} | {base['peak_pss_mb'][k]:,.0f} |"
                      for k, cmd in base["commands"].items()]
            lines += ["", f"Text output / one HDF5 file (2 workers): {base['speedup_wall']['median']:.2f}x the wall time, "
                          f"{base['speedup_cpu']['median']:.2f}x the CPU time.", ""]
        curve = res.get("memory_curve", [])
        if curve:
            lines += ["Memory against library size (`--workers 2`, same command; the whole library is the runs above):", "",
                      "| molecules | wall s | CPU s | peak PSS MB | peak RSS MB |", "|---|---|---|---|---|"]
            lines += [f"| {c['n_molecules']:,} | {c['wall_s']:.1f} | {c.get('cpu_s', float('nan')):.1f} | {c['peak_pss_mb']:,.0f} | "
                      f"{c['peak_rss_mb']:,.0f} |" for c in curve]
            lines.append("")
    fp = res.get("featurize_processes")
    if fp and "wall_s" in fp:
        lines += [f"Featurisation as whole processes, each pinned to one core (CPU {fp['cpu']}) with one BLAS/OpenMP thread, "
                  f"over the same {fp['n_molecules']:,} symbol-xyz files ({fp['data']}): `xanesnet featurize --preset "
                  f"xanesnet-2021` ({fp['g2']} G2, {fp['g4']} G4, {fp['our_features']} features, written to .npz) against a "
                  "script that reads each file with `ase.io.read` and runs dscribe's ACSF with the same G2 (eta, mu) and G4 "
                  "(eta, zeta, lambda) on every element present, saving a .npy.", "",
                  "| process | wall s (median) | min | max |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['median']:.2f} | {v['min']:.2f} | {v['max']:.2f} |" for k, v in fp["wall_s"].items()]
        r = fp["ratio_dscribe_over_ours"]
        lines += ["", f"dscribe / ours per run pair: {r['median']:.1f}x wall (range {r['min']:.1f}-{r['max']:.1f})"
                  + (f", {fp['cpu_ratio_dscribe_over_ours']['median']:.1f}x CPU time" if "cpu_ratio_dscribe_over_ours" in fp else "")
                  + ".", ""]
    elif fp:
        lines += [f"Featurisation processes: {fp.get('error')}", ""]
    return lines


def _md_predict(res: dict, out: Path) -> list[str]:
    lines = [f"## {_TITLES['predict']}", "", _load_line(res.get("meta", {})),
             f"Model: {res['model_info']['note']}. One molecule: `{res['molecule']}`."]
    if "error" in res:
        return lines + ["", f"Failed: {res['error']}", ""]
    cs = res["cold_start_s"]
    lines += ["", "Cold start (subprocess wall time, runs alternating; peak memory from `wait4`):", "",
              "| command | median s | min | max | peak MB |", "|---|---|---|---|---|"]
    for name, s in cs.items():
        lines.append(f"| `{name}` | {s['median']:.2f} | {s['min']:.2f} | {s['max']:.2f} | {res['cold_start_maxrss_mb'][name]:.0f} |")
    r = res["cold_start_vs_torch"]
    lines += ["", f"Ratio to `import torch` (per run pair, median): {r['median']:.2f}x (range {r['min']:.2f}-{r['max']:.2f}). "
                  f"The XANESNET tool takes about {XANESNET_TOOL_COLD_START_S} s."]
    if WHATIF in cs:
        w, t = cs[WHATIF]["median"], cs['python -c "import torch"']["median"]
        lines += ["", f"`{WHATIF}` is the same command with two small changes to the CLI (`OMP_NUM_THREADS=1`, and "
                      f"`os._exit` after flushing stdout/stderr, skipping the interpreter's teardown of torch's modules): "
                      f"{w:.2f} s, {w / t:.2f}x `import torch`."]
    if "phases_s" in res:
        ph = res["phases_s"]
        total = sum(ph.values())
        lines += ["", "Where the cold start goes (`python -c` timing each step of the predict path, median of runs):", "",
                  "| step | s | share |", "|---|---|---|"]
        lines += [f"| {k} | {val:.3f} | {val / total:.0%} |" for k, val in sorted(ph.items(), key=lambda kv: -kv[1])]
    if "importtime" in res:
        it = res["importtime"]
        lines += ["", f"`python -X importtime -m xanesnet.cli predict ...`: imports take {it['total_s']:.2f} s; top-level "
                      "imports by cumulative time:", "", "| module | cumulative s |", "|---|---|"]
        lines += [f"| `{row['module']}` | {row['cumulative_s']:.3f} |" for row in it["top_level"][:10]]
        lines += ["", "Self time by top package: " + ", ".join(f"{k} {val:.3f} s" for k, val in list(it["by_package_self_s"].items())[:8]) + "."]
    if "batch" in res:
        b = res["batch"]
        lines += ["", f"Batch after start-up (in process, {b['threads']} thread): {b['n_molecules']} molecules at "
                      f"{b['mol_per_s']['median']:,.0f} molecules/s (range {b['mol_per_s']['min']:,.0f}-{b['mol_per_s']['max']:,.0f}; "
                      f"{b['ms_per_molecule']:.3f} ms/molecule): featurise {b['featurize_s']['median']:.2f} s, networks "
                      f"{b['networks_s']['median']:.2f} s."]
    if "cli_batch" in res:
        c = res["cli_batch"]
        lines += ["", f"The CLI on the whole set (`{c['command']}`, start-up and writing {c['n_molecules']} files included): "
                      f"{c['wall_s']:.1f} s ({c['mol_per_s']:,.0f} molecules/s), peak memory {c['maxrss_mb']:.0f} MB"
                      + (f"; failed: {c.get('error')}" if c.get("returncode") else "") + "."]
        steps = res.get("cli_steps_s", {})
        if steps:
            lines += ["", "Its other steps, timed in process on the same files: " + "; ".join(
                f"{k} {v:.2f} s" if isinstance(v, float) else f"{k}: {v}" for k, v in steps.items()) + "."]
    if "batch_skipped" in res:
        lines += ["", f"Batch skipped: {res['batch_skipped']}"]
    return lines + [""]


def _md_train(res: dict, out: Path) -> list[str]:
    lines = [f"## {_TITLES['train']}", "", _load_line(res.get("meta", {}))]
    sh = res.get("shipped", {})
    if sh.get("config") or sh.get("fe_model_json"):
        c, j = sh.get("config", {}), sh.get("fe_model_json", {})
        lines.append(f"`models/fe-k-xanes` as shipped when this section was measured: trained in {_fmt(c.get('training_seconds'), '.0f')} s "
                     f"(config.json `training_seconds`; {_fmt(j.get('train_seconds'), '.0f')} s with calibration and saving in "
                     f"docs/fe_model.json), ensemble of {c.get('ensemble') or j.get('ensemble')} on {c.get('n_train') or j.get('n_train')} "
                     f"spectra, epochs run per member {c.get('epochs_run')}; not retrained here.")
    else:
        lines.append("Shipped model: `models/fe-k-xanes` and `docs/fe_model.json` are not there yet (no training time to report).")
    if res.get("partial"):
        lines += ["", f"**Partial result** ({len(res.get('per_fold', []))} folds so far; the run is still going or was stopped)."]
    if not res.get("per_fold"):
        return lines + [""]
    lines += ["", f"Cross-validation: {res['folds']} folds (KFold, shuffled, seed 0) over {res['n_samples']} molecules (the fixed "
                  f"held-out 10% excluded), {res['n_features']} features (`default` wACSF) -> {res['n_points']} points, "
                  f"{res['threads']} thread(s) for both. Ours: `xanesnet.training.train` with the default settings and one "
                  f"member (max epochs {res['ours']['training']['epochs']}, early stopping on 10% of the fold's training part; "
                  "MSE of the prediction `xanesnet predict` gives for a one-member model with dropout: the mean of 20 MC-dropout "
                  f"passes). scikit-learn: `StandardScaler` + `MLPRegressor({', '.join(f'{k}={val}' for k, val in res['sklearn'].items())})`. "
                  "The contenders take turns fitting first (column `first`).", "",
              "| fold | first | xanesnet MSE | xanesnet fit s | epochs | sklearn MSE | sklearn fit s | iterations | "
              "xanesnet capped MSE | capped fit s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["per_fold"]:
        a, b, c = r["xanesnet"], r["sklearn"], r.get("xanesnet_capped", {})
        lines.append(f"| {r['fold'] + 1} | {r.get('first', '')} | {a['mse']:.4g} | {a['fit_s']:.1f} | {a['epochs_run']} | {b['mse']:.4g} | "
                     f"{b['fit_s']:.1f} | {b['n_iter']}{'' if b['converged'] else ' (max_iter)'} | {_fmt(c.get('mse'), '.4g')} | "
                     f"{_fmt(c.get('fit_s'), '.1f')} |")
    if "ratios" in res:
        a, b = res["xanesnet_summary"], res["sklearn_summary"]
        mr, tr = res["ratios"]["mse_ours_over_sklearn"], res["ratios"]["fit_time_ours_over_sklearn"]
        lines += ["", f"Mean MSE: xanesnet {a['mse_mean']:.4g} ± {a['mse_std']:.2g} (one deterministic pass: "
                      f"{a['mse_deterministic_mean']:.4g}), sklearn {b['mse_mean']:.4g} ± {b['mse_std']:.2g}. Fit time per fold "
                      f"(median): {a['fit_s_median']:.1f} s vs {b['fit_s_median']:.1f} s. Per-fold ratios (median): MSE "
                      f"{mr['median']:.2f}x, fit time {tr['median']:.2f}x."]
        if "capped: mse_ours_over_sklearn" in res["ratios"]:
            cm, ct = res["ratios"]["capped: mse_ours_over_sklearn"], res["ratios"]["capped: fit_time_ours_over_sklearn"]
            lines += ["", f"\"xanesnet capped\" is the same fit stopped after at most {res['capped_epochs']} epochs (best weights "
                          f"kept): MSE {cm['median']:.2f}x sklearn's at {ct['median']:.2f}x its fit time (per-fold medians)."]
        sk_iter = [r["sklearn"]["n_iter"] for r in res["per_fold"]]
        if all(r["sklearn"]["converged"] for r in res["per_fold"]):
            lines += ["", f"scikit-learn stopped itself after {min(sk_iter)}-{max(sk_iter)} epochs (`tol=1e-4` on the training "
                          "loss for 10 epochs, its defaults), far short of max_iter."]
    if (out / "benchmark_train.png").is_file():
        lines += ["", "![training](benchmark_train.png)"]
    return lines + [""]


def _md_theory(res: dict, out: Path) -> list[str]:
    lines = [f"## {_TITLES['theory']}", "", _load_line(res.get("meta", {})),
             f"FEFF10 seconds per spectrum from `feff_3d/index.tsv` ({res['feff_all']['note']}); ours: featurise + predict per "
             f"molecule in a batch of that metal's tmQM files, one thread, timed with {res['model_info']['note']}; "
             "the time does not depend on the metal's model.", "",
             "| metal | FEFF10 runs | FEFF10 XANES s | FEFF10 XES s | ours: molecules timed | ensemble ms | single MLP ms "
             "| speed-up (FEFF10 XANES / ensemble) |",
             "|---|---|---|---|---|---|---|---|"]
    for metal, f in res["feff"].items():
        t = res.get("ml_ms_per_molecule", {}).get(metal, {})
        ens = t.get("ensemble")
        lines.append(f"| {metal} | {f['n']} | {f['xanes_s_median']:.1f} | {f['xes_s_median']:.1f} | {t.get('n', '-')} | {_fmt(ens, '.3f')} | "
                     f"{_fmt(t.get('single MLP'), '.3f')} | {_fmt(f['xanes_s_median'] / (ens / 1e3) if ens else None, ',.0f')}x |")
    fa = res["feff_all"]
    ml = res.get("ml_ms_all", {})
    lines += ["", f"All metals: FEFF10 median {fa['xanes_s_median']:.1f} s (XANES) and {fa['xes_s_median']:.1f} s (XES) per spectrum "
                  f"({fa['n']} complexes); ours {_fmt(ml.get('ensemble'), '.3f')} ms (ensemble of {res.get('ensemble_size')}) and "
                  f"{_fmt(ml.get('single MLP'), '.3f')} ms (one MLP) per molecule in a batch"
                  + (f", and {res['cold_start_s']:.2f} s for one molecule from a cold start (section 2)" if res.get("cold_start_s") else "") + "."]
    if res.get("feff_live"):
        lines += ["", "Live `xanesnet simulate` (FEFF10 XANES) runs here: " + "; ".join(
            f"{r['csd']} ({r['natoms']} atoms) {r['wall_s']:.1f} s (index.tsv: {r['index_s']:.1f} s){'' if r['returncode'] == 0 else ', FAILED'}"
            for r in res["feff_live"]) + "."]
    elif res.get("feff_live_skipped"):
        lines += ["", f"Live FEFF10 runs skipped: {res['feff_live_skipped']}."]
    acc = res.get("accuracy")
    if acc:
        lines += ["", f"Accuracy against FDMNES on {acc['n']} held-out Fe complexes ({acc['rule']}; {acc['data']}):", "",
                  "| method | MSE | median Pearson r |", "|---|---|---|"]
        for name, a in acc["methods"].items():
            extra = (f" (mean over the {res.get('ensemble_size')} members: {a['member_mse_mean']:.3e} ± {a['member_mse_std']:.1e})"
                     if "member_mse_mean" in a else "")
            note = f" ({a['note']})" if a.get("note") else ""
            lines.append(f"| {name} | {a['mse']:.3e}{extra}{note} | {a['pearson_r_median']:.3f} |")
        lines += ["", acc["feff_note"] + "."]
    elif res.get("accuracy_skipped"):
        lines += ["", f"Accuracy skipped: {res['accuracy_skipped']}."]
    if "note" in res.get("gpr", {}):
        note = res["gpr"]["note"]
        lines += ["", note[0].upper() + note[1:] + "."]
    if (out / "benchmark_theory_vs_ml.png").is_file():
        lines += ["", "![theory vs ML](benchmark_theory_vs_ml.png)"]
    return lines + [""]


def write_report(results: dict, out: Path) -> Path:
    sec = results.get("sections", {})
    figures = {"featurize": ("benchmark_featurize.png", figure_featurize, "ms_per_molecule"),
               "theory": ("benchmark_theory_vs_ml.png", figure_theory, "feff"),
               "train": ("benchmark_train.png", figure_train, "per_fold")}
    for name, (fname, fn, key) in figures.items():
        res = sec.get(name)
        if res and res.get(key) and "skipped" not in res:
            fn(res, out / fname)
    path = out / "benchmarks.md"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_markdown(results, out))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {', '.join(SECTIONS)} (default: all)")
    ap.add_argument("--size", choices=sorted(SIZES), default="full", help="tiny: a few molecules, seconds; full: the whole data set")
    ap.add_argument("--out", default=str(ROOT / "docs"), help="directory for benchmarks.md, benchmarks.json and figures (default docs/)")
    ap.add_argument("--work", help="scratch directory (symbol-xyz copies, feature npz, stand-in model; default ~/.cache/xanesnet/benchmark)")
    ap.add_argument("--data", help=f"reference data directory (default {SHARED})")
    ap.add_argument("--model", help="model directory to predict with (default: models/fe-k-xanes, else a stand-in trained here)")
    ap.add_argument("--threads", type=int, default=1, help="threads for the in-process batch, training and theory timings (default 1)")
    ap.add_argument("--molecules", type=int, help="featurisation/batch molecules (default: size's)")
    ap.add_argument("--repeats", type=int, help="featurisation repeats")
    ap.add_argument("--cold-runs", type=int, help="cold-start runs per contender")
    ap.add_argument("--folds", type=int, help="cross-validation folds")
    ap.add_argument("--train-samples", type=int, help="molecules in the cross-validation (default: all but the held-out set)")
    ap.add_argument("--epochs", type=int, help="our max epochs in the cross-validation (default: the library default)")
    ap.add_argument("--max-iter", type=int, help="scikit-learn max_iter (default 512)")
    ap.add_argument("--capped-epochs", type=int, help="also fit ours with at most this many epochs (default 25 full, 2 tiny; 0: no)")
    ap.add_argument("--feff-runs", type=int, help="live FEFF10 runs in the theory section")
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                    help="profile the cold start (-X importtime, phase timer); default: with --size full, or when over target")
    args = ap.parse_args(argv)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")

    ctx = Context(args)
    print(f"benchmark --size {args.size}: sections {', '.join(wanted)}; data {ctx.shared}; out {ctx.out}; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    results = ctx.load_results()
    for name in (s for s in SECTIONS if s in wanted):
        start = os.getloadavg()
        t0 = time.perf_counter()
        try:
            if name == "featurize":
                res = bench_featurize(ctx)
            elif name == "predict":
                res = bench_predict(ctx)
            elif name == "screen":
                res = bench_screen(ctx)
            elif name == "train":
                res = bench_train(ctx)
            elif name == "smalltrain":
                res = bench_smalltrain(ctx)
            else:
                res = bench_theory(ctx, results)
        except SectionSkipped as exc:
            res = {"skipped": str(exc)}
        if "skipped" in res:
            log(name, f"skipped: {res['skipped']}")
        res["meta"] = {**section_meta(ctx, start), "seconds": time.perf_counter() - t0}
        results = ctx.record(name, res)
        if res["meta"]["busy"]:
            log(name, f"note: machine busy (load {res['meta']['load_before'][0]:.2f} -> {res['meta']['load_after'][0]:.2f} on "
                      f"{res['meta']['cores']} cores); absolute times are inflated")
        write_report(results, ctx.out)
    path = write_report(results, ctx.out)
    print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
