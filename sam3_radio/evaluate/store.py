"""Incremental prediction files: one JSON line per finished unit, safe to resume.

Each rank appends to its own file, `rank-<rank>.jsonl`, in one folder per
model. A unit is an image, an image file of SA-Co/Gold or a video. A line is
written and flushed only after its unit finishes, so a killed run loses at
most the unit in progress, and a line cut short by the kill is dropped when
the file is read. On restart every rank reads all files in the folder, so
work that any rank finished is skipped even when the number of ranks
changed.

A unit that was skipped (for example a missing image) is stored with its
reason and retried on the next run, so a file restored later is picked up.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

OK = "ok"
SKIPPED = "skipped"


@dataclass
class UnitResult:
    """The outcome of one unit.

    Attributes:
        key: the unit's id, unique within a task.
        payload: task-specific predictions, JSON-serialisable.
        seconds: model time for the unit (inference only, not file reading).
        frames: images or video frames the model processed.
        status: 'ok', or 'skipped' with `reason`.
    """

    key: str
    payload: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    frames: int = 0
    status: str = OK
    reason: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "status": self.status,
                "reason": self.reason,
                "seconds": self.seconds,
                "frames": self.frames,
                "payload": self.payload,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnitResult:
        return cls(
            key=data["key"],
            payload=data.get("payload", {}),
            seconds=float(data.get("seconds", 0.0)),
            frames=int(data.get("frames", 0)),
            status=data.get("status", OK),
            reason=data.get("reason"),
        )

    @classmethod
    def skipped(cls, key: str, reason: str) -> UnitResult:
        return cls(key=key, status=SKIPPED, reason=reason)


class PredictionStore:
    """The JSON-lines files of one model's run; see the module docstring."""

    def __init__(self, folder: str | Path, rank: int = 0):
        self.folder = Path(folder)
        self.rank = rank
        self.path = self.folder / f"rank-{rank:03d}.jsonl"

    def read_all(self) -> dict[str, UnitResult]:
        """Return the latest result of every unit found in any rank's file.

        A finished ('ok') result is kept over a later 'skipped' one for the
        same key, so a unit is never counted twice or lost.
        """
        results: dict[str, UnitResult] = {}
        for path in sorted(self.folder.glob("rank-*.jsonl")):
            for result in _read_lines(path):
                previous = results.get(result.key)
                if previous is not None and previous.status == OK and result.status != OK:
                    continue
                if previous is not None and previous.status == OK and result.status == OK:
                    logger.warning("unit %s is stored twice; keeping the first result", result.key)
                    continue
                results[result.key] = result
        return results

    def finished_keys(self) -> set[str]:
        """Return the keys of units with an 'ok' result."""
        return {key for key, result in self.read_all().items() if result.status == OK}

    def append(self, result: UnitResult) -> None:
        """Append one result as a line, flushed and synced to disk."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _drop_partial_line(self.path)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(result.to_json() + "\n")
            stream.flush()
            os.fsync(stream.fileno())


def _read_lines(path: Path) -> list[UnitResult]:
    results = []
    with path.open("r", encoding="utf-8") as stream:
        lines = stream.read().split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            results.append(UnitResult.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError) as error:
            if number == len(lines):
                logger.warning("%s: dropped a line cut short by an interrupted run", path)
            else:
                raise ValueError(
                    f"{path} line {number} is not a valid result ({error}): the file is "
                    "damaged; delete the line or the file to recompute its units"
                ) from error
    return results


def _drop_partial_line(path: Path) -> None:
    """Cut a last line that has no newline, left by a process killed mid-write."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as stream:
        data = stream.read()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        stream.truncate(cut)
    logger.warning("%s: removed a partial last line left by an interrupted run", path)
