"""The engine's stop channel: how a run's steps report the first error and how a run is stopped.

>>> c = RunControl()
>>> c.stop(); c.stopping
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class RunControl:
    """Shared between a run's steps: the first error stops the run cleanly.

    Bytewax turns an exception in a step into a panic with a long backtrace; steps instead
    record the error here, the source then ends the stream, and the runner raises the
    recorded error with its own message.

    >>> c = RunControl()
    >>> c.fail(ValueError("boom")); c.fail(KeyError("later"))
    >>> repr(c.error)
    "ValueError('boom')"
    """

    def __init__(self, progress: Callable[[int], None] | None = None) -> None:
        self.error: BaseException | None = None
        self.progress = progress
        self.dropped = 0
        self.seen: dict[str, Any] = {}  # per-symbol summaries of the bars used (fingerprints)
        self.stopping = False  # a clean stop was asked for (live runs: a signal, a limit)
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Ask the sources to end the stream cleanly (what is in flight is finished).

        >>> c = RunControl()
        >>> c.stop()
        >>> c.stopping, c.failed
        (True, False)
        """
        self.stopping = True

    def fail(self, exc: BaseException) -> None:
        """Record ``exc`` unless an earlier error is already recorded.

        >>> c = RunControl()
        >>> c.fail(ValueError("first")); c.fail(KeyError("second"))
        >>> c.error
        ValueError('first')
        """
        with self._lock:
            if self.error is None:
                self.error = exc

    @property
    def failed(self) -> bool:
        """True once any step has failed.

        >>> RunControl().failed
        False
        """
        return self.error is not None
