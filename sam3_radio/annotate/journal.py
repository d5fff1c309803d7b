"""Append-only journal of finished images (JSON lines), the basis of resume.

The first line is a header with the settings fingerprint. Each further line is
one finished image with its masks. Every line is flushed and fsync'd before the
next image starts, so after a kill (even SIGKILL) the file holds every finished
image, plus at most one torn last line without its newline. `Journal.open`
cuts that torn line off before appending.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

JOURNAL_FORMAT = "sam3-radio annotate journal"
JOURNAL_VERSION = 1


class JournalMismatchError(ValueError):
    """Raised when an existing journal was written with other settings or inputs."""


def _encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode("utf-8")


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _describe_difference(expected: dict[str, Any], found: dict[str, Any]) -> str:
    keys = sorted(set(expected) | set(found))
    changed = [key for key in keys if expected.get(key) != found.get(key)]
    return ", ".join(f"{key}: {found.get(key)!r} -> {expected.get(key)!r}" for key in changed)


class Journal:
    """The journal file of one output folder.

    Example:
        >>> journal = Journal.open(out / "journal.jsonl", fingerprint)
        >>> if "12" not in journal.records:
        ...     journal.append({"image": "12", "masks": [...]})
    """

    def __init__(self, path: Path, records: dict[str, dict[str, Any]]):
        self.path = path
        self.records = records

    @classmethod
    def open(cls, path: Path, fingerprint: dict[str, Any]) -> Journal:
        """Open or create the journal at `path` and read its finished images.

        Raises:
            JournalMismatchError: the journal was written with another fingerprint.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {"format": JOURNAL_FORMAT, "version": JOURNAL_VERSION, "fingerprint": fingerprint}
        lines = cls._read_complete_lines(path)
        if not lines:
            with open(path, "wb") as stream:
                stream.write(_encode(header))
                stream.flush()
                os.fsync(stream.fileno())
            _fsync_folder(path.parent)
            return cls(path, {})
        cls._check_header(path, lines[0], header)
        records: dict[str, dict[str, Any]] = {}
        for line_number, line in enumerate(lines[1:], start=2):
            try:
                record = json.loads(line)
                key = record["image"]
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
                logger.warning(
                    "ignored corrupt journal line %d of %s (%s): that image runs again",
                    line_number,
                    path,
                    error,
                )
                continue
            # The last record of an image wins: it replaced a stale one.
            records[str(key)] = record
        logger.info("resuming from %s: %d images already finished", path, len(records))
        return cls(path, records)

    @staticmethod
    def _read_complete_lines(path: Path) -> list[bytes]:
        """Return the newline-terminated lines of `path`, cutting off a torn last line."""
        if not path.exists():
            return []
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            logger.warning(
                "cut a torn last line (%d bytes) off %s, left by an interrupted run",
                len(data) - end,
                path,
            )
            with open(path, "r+b") as stream:
                stream.truncate(end)
                stream.flush()
                os.fsync(stream.fileno())
        return [line for line in data[:end].split(b"\n") if line]

    @staticmethod
    def _check_header(path: Path, line: bytes, expected: dict[str, Any]) -> None:
        try:
            found = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise JournalMismatchError(
                f"{path} does not start with a journal header: delete it to start over, "
                "or choose another output.dir"
            ) from error
        if found.get("format") != JOURNAL_FORMAT or found.get("version") != JOURNAL_VERSION:
            raise JournalMismatchError(
                f"{path} is not a version {JOURNAL_VERSION} annotate journal: "
                "choose another output.dir"
            )
        if found.get("fingerprint") != expected["fingerprint"]:
            difference = _describe_difference(
                expected["fingerprint"], found.get("fingerprint") or {}
            )
            raise JournalMismatchError(
                f"{path} was written with other settings or inputs ({difference}). "
                "Rerun with the original settings to resume, choose another output.dir, "
                "or delete the journal to start over"
            )

    def append(self, record: dict[str, Any]) -> None:
        """Append one finished image and fsync it. `record["image"]` is the image key."""
        line = _encode(record)
        with open(self.path, "ab") as stream:
            stream.write(line)
            stream.flush()
            os.fsync(stream.fileno())
        # Keep the record as a later run reads it back (sorted keys, JSON types), so
        # fresh and resumed runs build their outputs from identical records.
        self.records[str(record["image"])] = json.loads(line)
