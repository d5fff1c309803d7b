"""Kill `sam3-radio annotate` with SIGKILL mid-run, rerun it, compare with an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import TINY_MODEL

# Model building alone takes tens of seconds on a loaded 2-core CPU.
START_TIMEOUT_S = 400


def journal_records(path: Path) -> int:
    if not path.is_file():
        return 0
    return max(path.read_bytes().count(b"\n") - 1, 0)


def output_files(folder: Path) -> dict[str, bytes]:
    paths = [folder / "annotations.json", folder / "summary.json", folder / "data.yaml"]
    paths += sorted((folder / "labels").rglob("*.txt"))
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in paths}


def test_kill_and_resume_matches_uninterrupted_run(coco_run, tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "sam3_radio.cli",
        "annotate",
        *TINY_MODEL,
        f"input.annotations={coco_run.boxes_path}",
        f"input.images={coco_run.settings.images}",
        f"output.dir={out}",
    ]
    journal = out / "journal.jsonl"
    with open(tmp_path / "killed.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while journal_records(journal) < 1 and process.poll() is None:
            assert time.monotonic() < deadline, "no image finished before the timeout"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    finished_before_kill = journal_records(journal)
    assert 1 <= finished_before_kill < 3
    assert not (out / "annotations.json").exists()
    with open(journal, "ab") as stream:
        stream.write(b'{"image": "3", "size": [12')

    resumed = subprocess.run(command, capture_output=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    assert b"already finished" in resumed.stderr
    assert b"cut a torn last line" in resumed.stderr

    expected = output_files(coco_run.settings.output_dir)
    found = output_files(out)
    assert sorted(found) == sorted(expected)
    for name in expected:
        assert found[name] == expected[name], f"{name} differs from the uninterrupted run"
    records = journal.read_text().splitlines()[1:]
    assert len(records) == 3
