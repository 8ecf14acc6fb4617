"""Screening: predict a whole structure library into one HDF5 file, streaming, in parallel, resumable.

>>> summary = predict_library(["tmqm/"], "results.h5", spectra=("xanes", "xes"), model_for=default_model)
>>> results = read_results("results.h5")          # {"fe-k-xanes": ModelResults(ids, energy, mean, std, ...), ...}

Files are read, featurised (:meth:`Descriptor.create_batch`, vectorised over
the chunk) and predicted a chunk at a time, so memory does not grow with the
library; each finished chunk goes to the file's write-ahead parts at once
(:mod:`xanesnet.io.results`). ``workers`` processes on this machine, or a Dask
cluster, each take whole chunks; the parent only reads the file list and writes.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import multiprocessing
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from xanesnet.errors import XanesnetError
from xanesnet.io.files import ExclusiveLock, check_unique_names
from xanesnet.io.results import ChunkResult, GroupInfo, ModelRows, ResultStore
from xanesnet.io.structures import Structure, absorber_sites, find_structure_files, read_structure
from xanesnet.parallel import dask_client, import_distributed, progress_bar

logger = logging.getLogger(__name__)

SPECTRA = ("xanes", "xes")

#: (element symbol, spectrum) -> model directory; raises XanesnetError when there is none.
ModelFinder = Callable[..., Path]


@dataclass(frozen=True)
class Request:
    """What to predict for every molecule: sent to the workers with each chunk."""

    spectra: tuple[str, ...]
    model: str | None = None
    model_for: ModelFinder | None = None
    absorber: int | str | None = None
    skip_bad: bool = False
    mc_samples: int | None = None

    def header(self) -> dict[str, str]:
        """The request as the file's root attributes: a rerun must ask for the same."""
        return {"request": json.dumps({"spectra": list(self.spectra), "model": self.model or "per element (shipped)",
                                       "absorber": "auto" if self.absorber is None else str(self.absorber),
                                       "mc_samples": self.mc_samples}, sort_keys=True)}


@dataclass
class ScreenSummary:
    """Outcome of :func:`predict_library`."""

    output: Path
    predicted: int = 0
    already_done: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        per_model = ", ".join(f"{name} {n}" for name, n in sorted(self.groups.items()))
        done = f"; {self.already_done} already in the file" if self.already_done else ""
        return (f"predicted {self.predicted} molecules in {self.seconds:.1f} s ({per_model or 'no model'}){done}; "
                f"{len(self.skipped)} skipped -> {self.output}")


def predict_library(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, spectra: Sequence[str] = ("xanes",),
                    model: str | os.PathLike | None = None, model_for: ModelFinder | None = None,
                    absorber: int | str | None = None, skip_bad: bool = False, mc_samples: int | None = None,
                    workers: int = 1, scheduler: Any = None, chunk_size: int = 1024, progress: bool = True) -> ScreenSummary:
    """Predict every structure of ``paths`` into the HDF5 file ``out``; safe to kill and rerun (it skips what is there).

    Parameters
    ----------
    paths
        Structure files and directories (their ``*.xyz`` files); molecules are keyed by file stem.
    out
        Results file to create or complete (layout in :mod:`xanesnet.io.results`).
    spectra
        ``"xanes"`` and/or ``"xes"``, predicted in the same pass (one group per model).
    model, model_for
        One model directory for every molecule, or a function ``(element, spectrum, path=...)`` giving the model
        of each absorber element (e.g. the shipped ones).
    absorber
        Absorbing atom: index, element (several atoms of it: the spectrum is their average), ``None`` for the one
        Ti-Zn metal.
    skip_bad
        Record unreadable or undescribable molecules as skipped (with the reason) instead of stopping.
    workers, scheduler
        Processes on this machine, or a Dask scheduler address / ``distributed.Client`` (workers need xanesnet and
        access to the model directories; the structures are sent to them).
    chunk_size
        Molecules per chunk: the unit of work, of memory and of writing.
    """
    started = time.perf_counter()
    spectra = tuple(dict.fromkeys(spectra))
    unknown = [s for s in spectra if s not in SPECTRA]
    if unknown or not spectra:
        raise XanesnetError(f"unknown spectrum kind {', '.join(unknown) or '(none)'}; choose from {', '.join(SPECTRA)}")
    if (model is None) == (model_for is None):
        raise ValueError("give exactly one of model and model_for")
    if model is not None and len(spectra) > 1:
        raise XanesnetError("one --model predicts one kind of spectrum; leave out --model to use the shipped model "
                            "of each element and spectrum")
    if scheduler is None and (not isinstance(workers, int) or workers < 1):
        raise XanesnetError(f"workers must be a positive integer, got {workers!r}")
    if chunk_size < 1:
        raise XanesnetError(f"chunk size must be a positive integer, got {chunk_size!r}")
    if scheduler is not None:
        import_distributed()
    request = Request(spectra=spectra, model=None if model is None else str(Path(model).resolve()), model_for=model_for,
                      absorber=absorber, skip_bad=skip_bad, mc_samples=mc_samples)
    files = find_structure_files(list(paths))
    if not files:
        raise XanesnetError("no structure files found in " + ", ".join(map(str, paths)))
    check_unique_names(files)

    out = Path(out)
    summary = ScreenSummary(output=out)
    with ExclusiveLock(out, "another predict run is writing this file"):
        store = ResultStore(out, request.header())
        done = store.done_ids()
        todo = [f for f in files if f.stem not in done]
        summary.already_done = len(files) - len(todo)
        logger.info("%d molecules to predict, %d already in %s", len(todo), summary.already_done, out)
        chunks = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
        bar = progress_bar(len(todo), progress, "predict")
        try:
            run = _run_dask if scheduler is not None else _run_pool if workers > 1 else _run_here
            for result in run(chunks, request, workers=workers, scheduler=scheduler):
                store.add(result)
                summary.skipped += result.skipped
                for name, (_, rows) in result.groups.items():
                    summary.groups[name] = summary.groups.get(name, 0) + len(rows)
                n = result.n_molecules
                summary.predicted += n - len(result.skipped)
                bar.update(n)
        finally:
            bar.close()
            store.merge()  # what finished is kept, also when a bad file stops the run
    summary.seconds = time.perf_counter() - started
    logger.info("%s", summary)
    return summary


# --------------------------------------------------------------------------------------------------
# one chunk (runs in the parent, a worker process or a Dask worker)
# --------------------------------------------------------------------------------------------------
_PREDICTORS: dict[str, Any] = {}


def _predictor(path: str) -> Any:
    """The model at ``path``, loaded once per process."""
    if path not in _PREDICTORS:
        from xanesnet.predict import Predictor

        _PREDICTORS[path] = Predictor.from_bundle(path)
    return _PREDICTORS[path]


Job = tuple[str, bytes | None]  # structure file, and its bytes when the worker may not see the file


def predict_chunk(jobs: Sequence[Job], request: Request) -> ChunkResult:
    """Read, featurise (batched per descriptor) and predict one chunk of structure files."""
    from ase.data import chemical_symbols

    result = ChunkResult()
    molecules: list[tuple[Structure, list[int], dict[str, str]]] = []  # structure, absorbing atoms, spectrum -> model
    found: dict[str, dict[str, str]] = {}  # element -> spectrum -> model
    for source, raw in jobs:
        try:
            s = read_structure(source, raw)
            atoms = absorber_sites(s, request.absorber)
            element = chemical_symbols[s.numbers[atoms[0]]]
            if element not in found:
                found[element] = {sp: request.model or str(request.model_for(element, sp, path=source)) for sp in request.spectra}
            models = found[element]
        except XanesnetError as exc:
            _skip_or_raise(result, request, Path(source).stem, exc)
            continue
        molecules.append((s, atoms, models))

    # features per descriptor setting (models that share one, e.g. XANES and XES of an element, share the rows)
    features: dict[tuple[str, int], np.ndarray] = {}
    bad: set[int] = set()
    by_model: dict[str, list[int]] = {}
    for i, (_, _, models) in enumerate(molecules):
        for path in models.values():
            by_model.setdefault(path, []).append(i)
    for path, members in by_model.items():
        descriptor = _predictor(path).descriptor
        key = descriptor.settings_hash()
        todo = [i for i in members if (key, i) not in features and i not in bad]
        rows = [(i, a) for i in todo for a in molecules[i][1]]
        x, errors = descriptor.create_batch([molecules[i][0] for i, _ in rows], [a for _, a in rows])
        start = 0
        for i in todo:
            n = len(molecules[i][1])
            error = next((e for e in errors[start:start + n] if e is not None), None)
            if error is not None:
                bad.add(i)
                _skip_or_raise(result, request, molecules[i][0].name, error)
            else:
                features[key, i] = x[start:start + n]
            start += n

    for path, members in by_model.items():
        members = [i for i in members if i not in bad]
        if members:
            predictor = _predictor(path)
            key = predictor.descriptor.settings_hash()
            result.groups[Path(path).name] = (group_info(path, request),
                                              _predict_rows(predictor, [molecules[i] for i in members],
                                                            np.vstack([features[key, i] for i in members]), request))
    return result


def _skip_or_raise(result: ChunkResult, request: Request, name: str, exc: XanesnetError) -> None:
    if not request.skip_bad:
        raise exc
    result.skipped.append((name, str(exc)))


def _predict_rows(predictor: Any, molecules: list[tuple[Structure, list[int], dict[str, str]]], x: np.ndarray,
                  request: Request) -> ModelRows:
    from xanesnet.predict import average_sites

    ids = [s.name for s, _, _ in molecules]
    counts = [len(atoms) for _, atoms, _ in molecules]
    pred = predictor.predict_features(x, ids=ids if len(x) == len(ids) else None, mc_samples=request.mc_samples)
    if len(x) > len(ids):
        pred = average_sites(pred, np.repeat(np.arange(len(ids)), counts), ids)
    n = len(ids)
    nan = np.full(n, np.nan, dtype=np.float32)
    return ModelRows(ids=ids, mean=pred.mean.astype(np.float32), std=pred.std.astype(np.float32),
                     trusted=np.zeros(n, bool) if pred.trusted is None else np.asarray(pred.trusted, bool),
                     score=nan if pred.score is None else pred.score.astype(np.float32),
                     extrapolation=nan if pred.extrapolation is None else pred.extrapolation.astype(np.float32),
                     absorber_atoms=[atoms for _, atoms, _ in molecules])


_GROUP_INFO: dict[tuple[str, int | None, str], GroupInfo] = {}


def group_info(path: str, request: Request) -> GroupInfo:
    """The attributes and energy grid of one model's group (built once per process: every chunk carries them)."""
    key = (path, request.mc_samples, str(request.absorber))
    if key not in _GROUP_INFO:
        _GROUP_INFO[key] = _group_info(path, request)
    return _GROUP_INFO[key]


def _group_info(path: str, request: Request) -> GroupInfo:
    predictor = _predictor(path)
    config = predictor.bundle.config
    mode = "mc" if request.mc_samples else predictor.default_mode()
    trust = (config.get("uncertainty", {}).get("trust", {}) or {}).get(mode or "", {})
    attrs = {"model": str(path), "spectrum": str(config.get("spectrum", "xanes")), "config": json.dumps(config),
             "weights_sha256": str(config.get("weights_sha256", "")),
             "energy_scale": "relative to E0" if predictor.relative else "absolute",
             "uncertainty_mode": mode or "none", "trust_threshold": float(trust.get("threshold", np.nan)),
             "absorber": "auto (the one Ti-Zn metal)" if request.absorber is None else str(request.absorber)}
    return GroupInfo(attrs=attrs, energy=np.asarray(predictor.energy, float))


# --------------------------------------------------------------------------------------------------
# where the chunks run
# --------------------------------------------------------------------------------------------------
def _run_here(chunks: list[list[Path]], request: Request, **_: Any) -> Iterator[ChunkResult]:
    for chunk in chunks:
        yield predict_chunk([(str(p), None) for p in chunk], request)


def _worker_init(parent: int) -> None:
    """One thread per worker process (the processes are the parallelism), each ending when ``parent`` ends."""
    import torch

    from xanesnet.parallel import keep_freed_heap, tie_to_parent

    tie_to_parent(parent)
    keep_freed_heap()
    torch.set_num_threads(1)


def _run_pool(chunks: list[list[Path]], request: Request, *, workers: int, **_: Any) -> Iterator[ChunkResult]:
    """Chunks on ``workers`` processes, two each in flight, results in input order."""
    if not chunks:
        return
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                initargs=(os.getpid(),)) as pool:
        yield from _in_order(lambda chunk: pool.submit(predict_chunk, [(str(p), None) for p in chunk], request),
                             chunks, 2 * workers, lambda future: future.result())


def _run_dask(chunks: list[list[Path]], request: Request, *, scheduler: Any, **_: Any) -> Iterator[ChunkResult]:
    """Chunks on a Dask cluster (the structures' bytes are sent along), two per worker thread in flight, in order."""
    import_distributed()  # the install hint before anything else
    if not chunks:
        return
    with dask_client(scheduler) as (client, slots):

        def submit(chunk: list[Path]) -> Any:
            return client.submit(predict_chunk, [(str(p), p.read_bytes()) for p in chunk], request, pure=False)

        def collect(future: Any) -> ChunkResult:
            try:
                return future.result()
            finally:
                future.release()

        yield from _in_order(submit, chunks, slots, collect)


def _in_order(submit: Callable[[Any], Any], items: list[Any], in_flight: int, collect: Callable[[Any], Any]) -> Iterator[Any]:
    """Submit ``items`` with at most ``in_flight`` pending, yielding their results in the order given."""
    pending: deque = deque()
    items_iter = iter(items)
    for item in items_iter:
        pending.append(submit(item))
        if len(pending) >= in_flight:
            break
    while pending:
        result = collect(pending.popleft())
        nxt = next(items_iter, None)
        if nxt is not None:
            pending.append(submit(nxt))
        yield result
