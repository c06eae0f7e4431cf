"""A full disk during a live run is one line naming the file, exit 1: not a Rust panic and an
"internal error" (exit 2). The write fails where the OS would fail it: the run folder's
append-only log gets ``ENOSPC`` from its file's ``write``, without a file name, as a real
``write(2)`` does."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dataflows.recovery as recovery
from qmtl.cli import app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


class FullDisk:
    """A file whose writes fail as on a full disk (after ``room`` writes; 0: the first)."""

    def __init__(self, real, room: int) -> None:
        self.real, self.room = real, room

    def write(self, data: bytes) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= 1
        return self.real.write(data)

    def flush(self) -> None:
        self.real.flush()

    def close(self) -> None:
        self.real.close()


@pytest.fixture
def full_disk(monkeypatch):
    made = []
    init = recovery.RecordLog.__init__

    def patched(self, path, dtype, resume):
        init(self, path, dtype, resume)
        if self._file is not None:
            self._file = FullDisk(self._file, room=0)
            made.append(path)

    monkeypatch.setattr(recovery.RecordLog, "__init__", patched)
    return made


def test_a_full_disk_in_a_live_run_names_the_file_and_exits_1(tmp_path, full_disk):
    runner = CliRunner()
    cat = tmp_path / "cat"
    assert runner.invoke(app, ["data", "demo", "--data", str(cat)]).exit_code == 0
    out = tmp_path / "out"
    got = runner.invoke(app, [
        "run", "--mode", "live", str(EXAMPLES / "sma_cross.py"), "--paper", "--data", str(cat),
        "--speed", "max", "--max-bars", "40", "--out", str(out),
        "--recovery-dir", str(tmp_path / "rec"),
    ])
    assert full_disk, "the live run wrote no log"
    assert got.exit_code == 1, got.output
    flat = "".join(got.output.split())
    assert "nospaceleftondevice:" in flat and ".rows.bin" in flat, got.output
    assert "internal error" not in got.output and "panicked" not in got.output
