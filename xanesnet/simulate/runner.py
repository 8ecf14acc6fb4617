"""Simulate many molecules with FEFF10, in parallel, into one resumable HDF5 file."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from xanesnet.errors import XanesnetError
from xanesnet.io.files import ExclusiveLock, check_unique_names
from xanesnet.io.structures import Structure, find_structure_files, read_structure
from xanesnet.parallel import dask_client, import_distributed, kill_workers, progress_bar, tie_to_parent
from xanesnet.simulate import store
from xanesnet.simulate.feff import FeffSettings, MoleculeResult, _check_spectrum, check_structure, import_feff, simulate_molecule

logger = logging.getLogger(__name__)



@dataclass
class SimulationSummary:
    """Outcome of :func:`simulate`: molecule names, with a one-line reason for failures and skips."""

    output: Path
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        return (f"{len(self.done)} done, {len(self.failed)} failed, {len(self.skipped)} skipped "
                f"in {self.seconds:.0f} s -> {self.output}")


def simulate(paths: list[str | os.PathLike] | str | os.PathLike, out_h5: str | os.PathLike, *,
             spectrum: str = "xanes", workers: int = 1, scheduler: Any = None, timeout: float | None = None,
             absorber: int | str | None = None, progress: bool = True, retry_failed: bool = False,
             settings: FeffSettings | dict[str, Any] | None = None, merge_every: int = 50) -> SimulationSummary:
    """Simulate FEFF10 spectra of many molecules into ``out_h5``; safe to kill and rerun.

    Parameters
    ----------
    paths
        Structure files and/or directories (their ``*.xyz`` files). Molecules
        are keyed by file stem, which must be unique.
    out_h5
        HDF5 file to create or continue (layout in :mod:`xanesnet.simulate.store`).
    spectrum
        ``"xanes"``, ``"xes"`` or ``"both"``.
    workers
        Worker processes on this machine (ignored when ``scheduler`` is given).
        They are started with ``spawn``: a script calling :func:`simulate`
        needs the usual ``if __name__ == "__main__":`` guard.
    scheduler
        Run on a Dask cluster instead: a scheduler address, a
        ``distributed.Client`` or a cluster object such as ``LocalCluster``.
        Workers need xanesnet and feff10 installed; structures are sent to
        them, so they need not see the input files.
    timeout
        Time limit (s) for each FEFF stage; overrides ``settings.timeout``.
    absorber
        Absorber for every molecule (index or element); ``None`` for the single
        first-row transition metal.
    progress
        Show a progress bar on stderr.
    retry_failed
        Simulate again the molecules recorded as failed (they are skipped by default).
    settings
        FEFF settings (a :class:`FeffSettings` or a dict of its fields).
    merge_every
        Merge finished molecules into ``out_h5`` after this many (and at the end).

    Returns
    -------
    SimulationSummary
        Bad input (unreadable file, no or wrong absorber, overlapping atoms) and
        FEFF crashes or time-outs are recorded as failures, never raised.
    """
    started = time.perf_counter()
    _check_spectrum(spectrum, allow_both=True)
    if isinstance(settings, dict):
        settings = FeffSettings.from_dict(settings)
    settings = settings or FeffSettings()
    if timeout is not None:
        settings = FeffSettings.from_dict({**settings.to_dict(), "timeout": timeout})
    if scheduler is None and (not isinstance(workers, int) or workers < 1):
        raise XanesnetError(f"workers must be a positive integer, got {workers!r}")
    if merge_every < 1:
        raise XanesnetError(f"merge_every must be a positive integer, got {merge_every!r}")
    import_feff()  # fail early, with the install hint, before any file is touched
    if scheduler is not None:
        import_distributed()
    files = find_structure_files([paths] if isinstance(paths, (str, os.PathLike)) else list(paths))
    check_unique_names(files)

    out_h5 = Path(out_h5)
    summary = SimulationSummary(output=out_h5)
    try:
        _simulate_into(out_h5, files, summary, spectrum=spectrum, workers=workers, scheduler=scheduler, absorber=absorber,
                       progress=progress, retry_failed=retry_failed, settings=settings, merge_every=merge_every)
    except OSError as exc:  # a read-only or full disk: one line naming the file, what is done stays done
        from xanesnet.io.files import write_error

        raise write_error(exc, exc.filename or out_h5) from None
    summary.seconds = time.perf_counter() - started
    logger.info("%s", summary)
    return summary


def _simulate_into(out_h5: Path, files: list[Path], summary: SimulationSummary, *, spectrum: str, workers: int,
                   scheduler: Any, absorber: int | str | None, progress: bool, retry_failed: bool,
                   settings: FeffSettings, merge_every: int) -> None:
    from xanesnet.io.files import prepare_directory

    prepare_directory(out_h5.parent)
    with ExclusiveLock(out_h5, "another simulation run is writing this file"):
        store.clean_stale(out_h5)
        store.ensure_store(out_h5, store.header_for(spectrum, absorber, settings.result_dict()))
        n = store.merge_parts(out_h5)
        if n:
            logger.info("merged %d molecules left by an earlier run into %s", n, out_h5)
        status = store.recorded(out_h5)

        todo: list[tuple[Path, Structure]] = []
        pending_merge = 0
        for path in files:
            name = path.stem
            if status.get(name) == "done":
                summary.skipped[name] = "already done"
                continue
            if status.get(name) == "failed" and not retry_failed:
                summary.skipped[name] = "failed before (retry_failed=True to retry)"
                continue
            structure = None
            try:
                structure = read_structure(path)
                check_structure(structure, absorber, settings=settings)
            except XanesnetError as exc:
                result = MoleculeResult(name=name, absorber=-1, error=str(exc))
                store.write_part(out_h5, result, structure, source=str(path))
                summary.failed[name] = str(exc)
                logger.warning("%s", exc)
                pending_merge += 1
                continue
            todo.append((path, structure))
        logger.info("%d molecules to simulate, %d skipped, %d bad input", len(todo), len(summary.skipped), len(summary.failed))

        bar = progress_bar(len(todo), progress, "FEFF")
        try:
            runs = _run_dask if scheduler is not None else _run_pool
            for (path, structure), result in runs(todo, scheduler=scheduler, workers=workers, absorber=absorber,
                                                  spectrum=spectrum, settings=settings):
                store.write_part(out_h5, result, structure, source=str(path))
                if result.error:
                    summary.failed[result.name] = result.error
                    logger.warning("%s", result.error)
                else:
                    summary.done.append(result.name)
                pending_merge += 1
                if pending_merge >= merge_every:
                    store.merge_parts(out_h5)
                    pending_merge = 0
                bar.update(1)
                bar.set_postfix(failed=len(summary.failed), refresh=False)
        finally:
            bar.close()
            store.merge_parts(out_h5)
            store.remove_empty_parts_dir(out_h5)


Job = tuple[Path, Structure]


def _run_pool(todo: list[Job], *, workers: int, absorber: int | str | None, spectrum: str,
              settings: FeffSettings, **_: Any) -> Iterator[tuple[Job, MoleculeResult]]:
    """Yield results as they finish from a pool of ``workers`` processes, with at most ``workers`` jobs in flight."""
    if not todo:
        return
    context = multiprocessing.get_context("spawn")
    jobs = iter(todo)

    def new_pool() -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=tie_to_parent,
                                      initargs=(os.getpid(),))

    pool = new_pool()
    running: dict[cf.Future, Job] = {}
    try:
        while True:
            while len(running) < workers:
                job = next(jobs, None)
                if job is None:
                    break
                running[pool.submit(simulate_molecule, job[1], absorber=absorber, spectrum=spectrum,
                                    settings=settings)] = job
            if not running:
                return
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            broken = False
            for future in finished:
                job = running.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # a worker died (e.g. killed for memory): this molecule fails, the batch goes on
                    broken = True
                    result = MoleculeResult(name=job[1].name, absorber=-1,
                                            error=f"{job[0]}: worker process died ({type(exc).__name__}: {exc})")
                yield job, result
            if broken:
                for future, job in list(running.items()):
                    running.pop(future)
                    yield job, MoleculeResult(name=job[1].name, absorber=-1,
                                              error=f"{job[0]}: worker process died while this molecule ran")
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    except BaseException:  # interrupted (Ctrl-C, SIGTERM, an error): no FEFF run outlives this process's wish
        kill_workers(pool)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_dask(todo: list[Job], *, scheduler: Any, absorber: int | str | None, spectrum: str,
              settings: FeffSettings, **_: Any) -> Iterator[tuple[Job, MoleculeResult]]:
    """Yield results as they finish from a Dask cluster, keeping about two jobs per worker thread in flight."""
    distributed = import_distributed()
    if not todo:
        return
    with dask_client(scheduler) as (client, slots):
        jobs = iter(todo)
        keys: dict[str, Job] = {}

        def submit() -> Any:
            job = next(jobs, None)
            if job is None:
                return None
            future = client.submit(simulate_molecule, job[1], absorber=absorber, spectrum=spectrum,
                                   settings=settings, pure=False)
            keys[future.key] = job
            return future

        first = [f for f in (submit() for _ in range(slots)) if f is not None]
        queue = distributed.as_completed(first)
        for future in queue:
            job = keys.pop(future.key)
            try:
                result = future.result()
            except Exception as exc:  # a worker was lost: this molecule fails, the batch goes on
                result = MoleculeResult(name=job[1].name, absorber=-1,
                                        error=f"{job[0]}: Dask task failed ({type(exc).__name__}: {exc})")
            future.release()
            yield job, result
            new = submit()
            if new is not None:
                queue.add(new)
