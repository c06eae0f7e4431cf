"""Recovery of a live run in one place: the recovery folder, the run's identity in it, the
state the live source snapshots, and files that must agree with the snapshots.

A live run started with ``--recovery-dir`` keeps there

- Bytewax's snapshot store (``part-*.sqlite3``): every stateful step's state at the end of
  each epoch (the source's :class:`SourceState`, the portfolio and gate states);
- ``qmtl-live.json`` (:data:`META_FILE`): the run's identity (strategy, symbols, interval,
  world, source) and the hand-off from history decided when it started, so a restart
  resumes the *same* run, with the same history, or refuses a folder of another run.

Output written outside Bytewax while the flow runs (the run folder's rows) goes through a
:class:`RecordLog`: each write reaches the OS before the step returns, so whatever a
snapshot covers is on disk, and a resumed run reads it back.

>>> import tempfile
>>> rd = RecoveryDir(Path(tempfile.mkdtemp()))
>>> fresh = {"run_id": "r1", "strategy": "s", "symbols": ["A"], "interval": "1d",
...          "world": "w", "source": "catalog:x"}
>>> rd.read_meta(fresh) is None  # a new run
True
>>> rd.write_meta({**fresh, "split": None, "history_end": {"A": 5}})
>>> rd.read_meta({**fresh, "run_id": "r2"})["run_id"]  # the run it holds resumes
'r1'
>>> try:
...     rd.read_meta({**fresh, "world": "other"})
... except RecoveryMismatch as exc:
...     print(str(exc).split(" holds ")[1])
another run (world: 'w', this run: 'other'); use a new directory to start afresh
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
from bytewax.recovery import RecoveryConfig, init_db_dir

from qmtl.core.errors import QmtlError, writing

log = logging.getLogger("qmtl.live")

META_FILE = "qmtl-live.json"
"""The run's identity and hand-off, in the recovery folder."""

IDENTITY = ("strategy", "symbols", "interval", "world", "source")
"""Meta keys that must match for a run to resume from a recovery folder."""

T = TypeVar("T")


class RecoveryMismatch(QmtlError, ValueError):
    """The recovery folder holds another run than the one being started.

    >>> isinstance(RecoveryMismatch("holds another run"), ValueError)
    True
    """


@dataclass(frozen=True)
class RecoveryDir:
    """A live run's recovery folder (see the module docstring).

    >>> import tempfile
    >>> rd = RecoveryDir(Path(tempfile.mkdtemp()) / "rec")
    >>> rd.has_snapshots()
    False
    >>> isinstance(rd.bytewax_config(resuming=False), RecoveryConfig), rd.has_snapshots()
    (True, True)
    """

    path: Path

    @property
    def meta_path(self) -> Path:
        """Where the run's identity is kept."""
        return self.path / META_FILE

    def read_meta(self, fresh: Mapping[str, Any]) -> dict[str, Any] | None:
        """The identity of the run the folder holds, checked against ``fresh`` (this run's)
        on :data:`IDENTITY`; None when the folder holds no run yet.

        >>> import tempfile
        >>> RecoveryDir(Path(tempfile.mkdtemp())).read_meta({}) is None
        True
        """
        if not self.meta_path.is_file():
            return None
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise RecoveryMismatch(
                f"--recovery-dir {self.path}: {META_FILE} is unreadable ({exc}); use a new "
                "directory to start afresh"
            ) from None
        for k in IDENTITY:
            if meta.get(k) != fresh.get(k):
                raise RecoveryMismatch(
                    f"--recovery-dir {self.path} holds another run ({k}: {meta.get(k)!r}, "
                    f"this run: {fresh.get(k)!r}); use a new directory to start afresh"
                )
        return meta

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """Record a new run's identity (atomically: a killed write leaves no torn file).

        >>> import tempfile
        >>> rd = RecoveryDir(Path(tempfile.mkdtemp()))
        >>> rd.write_meta({"run_id": "r"}); json.loads(rd.meta_path.read_text())
        {'run_id': 'r'}
        """
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        tmp.replace(self.meta_path)

    def has_snapshots(self) -> bool:
        """True once Bytewax's snapshot store exists in the folder."""
        return any(self.path.glob("part-*.sqlite3"))

    def bytewax_config(self, resuming: bool) -> RecoveryConfig:
        """Bytewax's recovery settings for the folder, creating its snapshot store when
        missing (a resumed run whose store is missing starts its flow over, and says so)."""
        if not self.has_snapshots():
            if resuming:
                log.warning("recovery dir %s has no snapshots yet: starting over", self.path)
            self.path.mkdir(parents=True, exist_ok=True)
            init_db_dir(self.path, 1)
        return RecoveryConfig(self.path)


def recovery_config(path: Path | None, resuming: bool) -> RecoveryConfig | None:
    """Bytewax's recovery settings for ``path`` (None: the run keeps no snapshots).

    >>> recovery_config(None, resuming=False) is None
    True
    """
    return None if path is None else RecoveryDir(path).bytewax_config(resuming)


def snapshot_copy(state: T, recovery: bool = True) -> T | None:
    """What a step hands Bytewax as its snapshot: a deep copy, since Bytewax pickles it
    later (at the end of the epoch) while the step goes on changing its state.

    Bytewax 0.21 calls every stateful step's ``snapshot()`` at the close of each epoch for
    each key the epoch touched, with or without a recovery config; without one it drops the
    value unread (it never pickles it). A run that keeps no snapshots (``recovery=False``:
    every replay backtest) so hands over None instead of copying its whole state.

    >>> s = {"targets": {"A": 1.0}}
    >>> c = snapshot_copy(s); s["targets"]["A"] = 2.0; c
    {'targets': {'A': 1.0}}
    >>> snapshot_copy(s, recovery=False) is None
    True
    """
    return copy.deepcopy(state) if recovery else None


@dataclass
class SourceState:
    """The live source's recovery state: the feed's positions (next offset per partition),
    each symbol's last bar time, the symbols handed off from history to the feed, how many
    warm-up items were emitted and how many live bars were taken. Its snapshot is a plain
    dict (what earlier versions stored, so their folders still resume).

    >>> s = SourceState.restore(None, history_end={"A": 10})
    >>> s.last_ts, s.warm_items
    ({'A': 10}, 0)
    >>> s.handed_off.add("A"); s.live_bars = 3
    >>> snap = s.snapshot({0: 7})
    >>> snap["positions"], snap["handed_off"], snap["live_bars"]
    ({0: 7}, ['A'], 3)
    >>> SourceState.restore(snap, history_end={}) == SourceState({0: 7}, {"A": 10}, {"A"}, 0, 3)
    True
    """

    positions: dict[int, int] = field(default_factory=dict)
    last_ts: dict[str, int] = field(default_factory=dict)
    handed_off: set[str] = field(default_factory=set)
    warm_items: int = 0
    live_bars: int = 0

    @classmethod
    def restore(
        cls, snapshot: Mapping[str, Any] | None, history_end: Mapping[str, int]
    ) -> SourceState:
        """The state of a snapshot, or of a new run (whose bars start after
        ``history_end``)."""
        if snapshot is None:
            return cls(last_ts=dict(history_end))
        return cls(
            positions={int(p): int(o) for p, o in (snapshot.get("positions") or {}).items()},
            last_ts=dict(snapshot.get("last_ts", history_end)),
            handed_off=set(snapshot.get("handed_off", ())),
            warm_items=int(snapshot.get("warm_items", 0)),
            live_bars=int(snapshot.get("live_bars", 0)),
        )

    def snapshot(self, positions: Mapping[int, int]) -> dict[str, Any]:
        """The snapshot, with the feed's ``positions`` now."""
        self.positions = dict(positions)
        return {
            "positions": dict(positions),
            "last_ts": dict(self.last_ts),
            "handed_off": sorted(self.handed_off),
            "warm_items": self.warm_items,
            "live_bars": self.live_bars,
        }


class RecordLog:
    """Records of a fixed dtype, kept in memory and, with a ``path``, appended to a file:
    each write reaches the OS before :meth:`append` returns, so rows a snapshot covers
    survive a killed process. With ``resume`` the file's records are read back (a torn last
    record is cut); without it the file starts empty.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "log.bin"
    >>> dt = np.dtype([("ts", "<i8"), ("x", "<f8")])
    >>> a = RecordLog(p, dt, resume=False); a.append(np.array([(1, 0.5)], dt)); a.close()
    >>> with p.open("ab") as f: _ = f.write(b"torn")
    >>> b = RecordLog(p, dt, resume=True); b.all()["ts"].tolist(), p.stat().st_size
    ([1], 16)
    >>> b.close(); RecordLog(p, dt, resume=False).all().size
    0
    """

    def __init__(self, path: Path | None, dtype: np.dtype, resume: bool) -> None:
        self.dtype = dtype
        self.path = path
        self.parts: list[np.ndarray] = []
        self._file: BinaryIO | None = None
        if path is None:
            return
        if resume and path.is_file():
            raw = path.read_bytes()
            whole = len(raw) // dtype.itemsize * dtype.itemsize
            if whole:
                self.parts.append(np.frombuffer(raw[:whole], dtype).copy())
            if whole != len(raw):
                with path.open("r+b") as f:
                    f.truncate(whole)
        elif path.exists():
            path.unlink()
        self._file = path.open("ab")

    def append(self, records: np.ndarray) -> None:
        """Add ``records`` (written through to the file)."""
        if self._file is not None:
            with writing(self.path):
                self._file.write(records.tobytes())
                self._file.flush()
        self.parts.append(records)

    def all(self) -> np.ndarray:
        """Every record so far."""
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0] if self.parts else np.empty(0, self.dtype)

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
