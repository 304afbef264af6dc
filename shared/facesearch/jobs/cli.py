"""``facesearch backfill``, ``rebuild`` and ``reembed`` (:mod:`.backfill`, :mod:`.rebuild`,
:mod:`.reembed`).

Each runs as one task of a job: ``--task-index`` / ``--task-count``, else Cloud Run's
``CLOUD_RUN_TASK_INDEX`` / ``CLOUD_RUN_TASK_COUNT``; ``rebuild``/``reembed --tasks N`` run every
task here in N processes and then switches. The JSON summary goes to stdout, the
progress bar (rate, ETA) to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facesearch.config import Settings, load_settings
from facesearch.storage.metadata import DEFAULT_COLLECTION


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "local", False):
        overrides["backend"] = "local"
    return load_settings(**overrides)


def _bar(total: int | None, unit: str, quiet: bool) -> Any:
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def cmd_backfill(args: argparse.Namespace) -> int:
    from facesearch.backends import backend_for
    from facesearch.jobs.backfill import Backfill
    from facesearch.jobs.tasks import TaskSlot

    source = str(args.source)
    if not source.startswith("gs://"):
        args.local = True  # a folder is ingested here, in embedded mode
    settings = _settings(args)
    task = TaskSlot.from_env(index=args.task_index, count=args.task_count)
    job = Backfill(
        backend_for(settings),
        source,
        collection_id=args.collection,
        task=task,
        run_id=args.run_id,
        batch_size=args.batch_size,
    )
    bar = _bar(None, "img", args.no_progress)

    def tick(done: int, report: Any) -> None:
        if bar is not None:
            bar.total = report.owned
            bar.update(done)
            bar.set_postfix(published=report.published, skipped=report.already_ingested)

    try:
        report = job.run(restart=args.restart, progress=tick)
    finally:
        if bar is not None:
            bar.close()
    print(json.dumps({"run_id": job.run_id, **report.to_dict()}, indent=2))
    return 0


def _run_id(args: argparse.Namespace, command: str, new_run_id: Callable[[], str]) -> str | None:
    """The run's id: ``--run-id``; one task of a job shares its execution's name (all its
    tasks must agree, so none is made up); a ``--tasks N`` run here may take a fresh one."""
    if args.tasks is not None:
        return args.run_id or new_run_id()
    run_id = args.run_id or os.environ.get("CLOUD_RUN_EXECUTION")
    if not run_id:
        print(f"facesearch {command}: a job task needs --run-id", file=sys.stderr)
    return run_id or None


def _run_tasks(job: Any, args: argparse.Namespace, run_local_tasks: Any) -> tuple[list[Any], int]:
    """``--tasks N``: every task here in N processes; else this one task of a job, with a
    progress bar. Returns the task results and how many tasks the run has in all."""
    from facesearch.jobs.tasks import TaskSlot

    if args.tasks is not None:
        return run_local_tasks(job, args.tasks), args.tasks
    task = TaskSlot.from_env(index=args.task_index, count=args.task_count)
    bar = _bar(None, "face", args.no_progress)
    try:
        return [job.run_task(task, bar.update if bar is not None else None)], task.count
    finally:
        if bar is not None:
            bar.close()


def _task_rows(results: list[Any], skipped_as: str) -> list[dict[str, Any]]:
    """One summary row per task; ``skipped_as`` names what its skipped faces were."""
    return [
        {
            "task": r.task.label,
            "faces": r.faces,
            "segments": r.segments,
            skipped_as: r.skipped_other_model,
            "seconds": round(r.seconds, 3),
            "faces_per_s": round(r.faces_per_s, 1),
            "resumed": r.resumed,
        }
        for r in results
    ]


def _switch_and_print(job: Any, count: int, summary: dict[str, Any]) -> int:
    """The last task to finish switches the index; print the summary either way."""
    if job.tasks_done(count):
        summary["switch"] = job.switch(count).__dict__
    else:
        summary["switch"] = "waiting for the other tasks (the last one switches)"
    print(json.dumps(summary, indent=2))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from facesearch.backends import backend_for
    from facesearch.jobs.rebuild import Rebuild, new_run_id, run_local_tasks

    backend = backend_for(_settings(args))
    run_id = _run_id(args, "rebuild", new_run_id)
    if run_id is None:
        return 2
    rebuild = Rebuild(
        backend,
        run_id,
        collection_id=args.collection,
        segment_size=args.segment_size,
        model=args.model,
    )
    rebuild.start()
    results, count = _run_tasks(rebuild, args, run_local_tasks)
    summary = {"run_id": rebuild.run_id, "tasks": _task_rows(results, "skipped_other_model")}
    return _switch_and_print(rebuild, count, summary)


def cmd_reembed(args: argparse.Namespace) -> int:
    from facesearch.backends import backend_for
    from facesearch.jobs.reembed import Reembed, new_run_id, run_local_tasks

    backend = backend_for(_settings(args))
    run_id = _run_id(args, "reembed", new_run_id)
    if run_id is None:
        return 2
    job = Reembed(
        backend,
        run_id,
        model=args.model,
        collection_id=args.collection,
        segment_size=args.segment_size,
        source=args.source,
    )
    started = job.start()
    results, count = _run_tasks(job, args, run_local_tasks)
    summary: dict[str, Any] = {
        "run_id": job.run_id,
        "from_model": started["from_model"],
        "model": started["model"],
        "tasks": _task_rows(results, "unavailable"),
    }
    if args.tasks is None:  # this process did the embedding: say from what
        summary["sources"] = {
            "crop": job.sources.crop,
            "original": job.sources.original,
            "reused": job.sources.reused,
            "unavailable": len(job.sources.unavailable),
        }
    return _switch_and_print(job, count, summary)


def add_job_commands(commands: Any) -> None:
    backfill = commands.add_parser(
        "backfill", help="ingest every image of gs://BUCKET[/PREFIX] (or a local folder)"
    )
    backfill.add_argument("source", help="gs://BUCKET[/PREFIX] or a local folder")
    backfill.add_argument("--batch-size", type=int, default=500, help="requests per publish")
    backfill.add_argument("--restart", action="store_true", help="ignore the checkpoint")
    backfill.set_defaults(handler=cmd_backfill)

    rebuild = commands.add_parser(
        "rebuild", help="rebuild the index from the metadata store, then switch atomically"
    )
    rebuild.add_argument("--tasks", type=int, help="run N tasks here in parallel, then switch")
    rebuild.add_argument("--segment-size", type=int, default=50_000, help="faces per segment")
    rebuild.add_argument("--model", help="embedding model to index (default: the index's)")
    rebuild.set_defaults(handler=cmd_rebuild)

    reembed = commands.add_parser(
        "reembed",
        help="re-embed every face with another model into a side index, then switch atomically",
    )
    reembed.add_argument("--model", required=True, help="embedder NAME[@VERSION] (model manifest)")
    reembed.add_argument("--tasks", type=int, help="run N tasks here in parallel, then switch")
    reembed.add_argument("--segment-size", type=int, default=50_000, help="faces per segment")
    reembed.add_argument(
        "--source",
        choices=("auto", "crop", "original"),
        default="auto",
        help="embed from the stored crop, the original image, or (auto) the crop unless it"
        " is too small for the new model",
    )
    reembed.set_defaults(handler=cmd_reembed)

    for sub in (backfill, rebuild, reembed):
        sub.add_argument("--collection", default=DEFAULT_COLLECTION, help="default 'default'")
        sub.add_argument("--run-id", help="checkpoint name (backfill: derived from the source)")
        sub.add_argument("--task-index", type=int, help="this task (CLOUD_RUN_TASK_INDEX)")
        sub.add_argument("--task-count", type=int, help="tasks in all (CLOUD_RUN_TASK_COUNT)")
        sub.add_argument("--data-dir", type=Path, help="embedded state (FACESEARCH_DATA_DIR)")
        sub.add_argument("--local", action="store_true", help="embedded mode (local backend)")
        sub.add_argument("--no-progress", action="store_true", help="no progress bar")
