"""Run one evaluation task with one model: shard, infer, store, resume, score, report.

Every rank runs the units of its shard that no earlier run finished and
appends each result to its own JSON-lines file (see `store`). After a
barrier, rank 0 reads every rank's file, scores the predictions, writes
`<out_dir>/<run name>/metrics.json`, and refreshes the backbone comparison
report in `<out_dir>`. The files must sit on a filesystem that every rank
can read, as the output folder of a multi-node job usually does.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from sam3_radio.evaluate.distributed import DistributedContext, init_distributed
from sam3_radio.evaluate.models import ModelSpec
from sam3_radio.evaluate.report import METRICS_FILE, write_report
from sam3_radio.evaluate.store import OK, SKIPPED, PredictionStore, UnitResult
from sam3_radio.predict.export import atomic_write_text

logger = logging.getLogger(__name__)


class EvalTask(Protocol):
    """One benchmark: its units of work, how to run one, and how to score them all."""

    name: str
    # Latency unit: 'image' or 'frame'.
    latency_unit: str

    def units(self) -> list[str]:
        """Return the unit keys in a fixed order."""

    def setup(self, spec: ModelSpec, device: str) -> None:
        """Build or fetch the model that `run_unit` uses."""

    def run_unit(self, key: str) -> UnitResult:
        """Run the model on one unit; return a skipped result for bad input."""

    def finalize(self, results: dict[str, UnitResult], run_dir: Path) -> dict[str, Any]:
        """Score finished units; return {'headline', 'metrics', 'notes'}."""


def _latency(results: list[UnitResult], unit: str) -> dict[str, Any]:
    seconds = sum(result.seconds for result in results)
    frames = sum(result.frames for result in results)
    return {
        "unit": unit,
        "seconds_per_frame": seconds / frames if frames else None,
        "total_seconds": seconds,
        "frames": frames,
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if hasattr(value, "item"):
        return _json_safe(value.item())
    return value


def run_units(
    task: EvalTask,
    spec: ModelSpec,
    store: PredictionStore,
    context: DistributedContext,
    device: str,
    limit: int | None = None,
) -> int:
    """Run this rank's unfinished units; return how many ran."""
    keys = task.units()
    if limit is not None:
        keys = keys[:limit]

    finished = store.finished_keys()
    # Shard every key, then drop finished ones, so that the assignment does
    # not depend on when each rank reads the files.
    pending = [key for key in context.shard(keys) if key not in finished]
    logger.info(
        "%s %s rank %d: %d units in its shard, %d already finished, %d to run",
        task.name,
        spec.run_name,
        context.rank,
        len(context.shard(keys)),
        len(context.shard(keys)) - len(pending),
        len(pending),
    )
    if not pending:
        return 0

    task.setup(spec, device)
    progress = tqdm(
        pending,
        desc=f"{task.name} {spec.run_name} [rank {context.rank}]",
        unit="unit",
        position=context.rank,
        dynamic_ncols=True,
    )
    for key in progress:
        result = task.run_unit(key)
        if result.status == SKIPPED:
            logger.warning("%s: skipped %s: %s", task.name, key, result.reason)
        store.append(result)
    return len(pending)


def score_run(
    task: EvalTask, spec: ModelSpec, store: PredictionStore, run_dir: Path, limit: int | None
) -> dict[str, Any]:
    """Score every stored result of one run and write its metrics.json."""
    keys = task.units()
    if limit is not None:
        keys = keys[:limit]
    stored = store.read_all()

    missing = [key for key in keys if key not in stored]
    if missing:
        raise RuntimeError(
            f"{len(missing)} unit(s) have no stored result after every rank finished, e.g. "
            f"{missing[:5]}: a rank failed; rerun to compute them"
        )
    results = {key: stored[key] for key in keys}
    finished = [result for result in results.values() if result.status == OK]
    skipped = [
        {"key": result.key, "reason": result.reason}
        for result in results.values()
        if result.status != OK
    ]

    start = time.perf_counter()
    scored = task.finalize(results, run_dir)
    logger.info("%s %s: scored in %.1f s", task.name, spec.run_name, time.perf_counter() - start)

    metrics = {
        "task": task.name,
        "model": spec.describe(),
        "headline": scored.get("headline", {}),
        "metrics": scored.get("metrics", {}),
        "notes": scored.get("notes", []),
        "latency": _latency(finished, task.latency_unit),
        "num_units": len(finished),
        "skipped": skipped,
    }
    if skipped:
        metrics["notes"].append(
            f"{len(skipped)} unit(s) were skipped and left out of every metric"
        )
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(_json_safe(metrics), indent=1))
    return metrics


def run_evaluation(
    cfg: Any, task: EvalTask, context: DistributedContext | None = None
) -> dict[str, Any] | None:
    """Evaluate `cfg.model` on `task`; return the metrics on rank 0 and None elsewhere.

    `cfg` is the composed config of one task (see configs/eval/).
    """
    context = context or init_distributed(cfg.device, cfg.get("dist_timeout_minutes", 180))
    spec = ModelSpec.from_config(cfg.model)
    out_dir = Path(cfg.out_dir)
    run_dir = out_dir / spec.run_name
    store = PredictionStore(run_dir / "predictions", context.rank)
    device = context.device(cfg.device)
    limit = cfg.get("limit")
    if spec.weights == "random" and context.is_main:
        logger.warning("%s uses RANDOM weights: its metrics are meaningless", spec.run_name)

    run_units(task, spec, store, context, device, limit)
    context.barrier()
    metrics = None
    if context.is_main:
        metrics = score_run(task, spec, store, run_dir, limit)
        write_report(out_dir)
    context.barrier()
    return metrics
