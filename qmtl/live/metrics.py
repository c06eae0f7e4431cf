"""A live run's own Prometheus metrics, served on a port when asked
(``qmtl run --mode live --metrics-port N``, :attr:`LiveOptions.metrics_port`).

The values are read from the run's counters when Prometheus scrapes (nothing is added to a
bar's path but one counter per gate decision):

=====================================  =======================================================
``qmtl_live_bars_total``               bars in, by ``kind``: ``live``, ``warmup``,
                                       ``overlap`` (already in history), ``gap_filled``
``qmtl_live_dead_letters_total``       bars refused (bad, duplicate, unknown symbol)
``qmtl_live_gate_total``               the order gate's decisions per bar, by ``verdict``:
                                       ``trade``, ``flatten``, ``hold`` (orders held: no
                                       activation, a stale one, or the world lost)
``qmtl_live_gate_held_total``          the holds, by ``cause`` (:data:`dataflows.gate.HOLD_CAUSES`):
                                       ``world_gone``, ``world_restarted``, ``frozen``,
                                       ``connecting``,
                                       ``lost``, ``no_activation``, ``unlisted``, ``stale``,
                                       ``stage``
``qmtl_live_orders_total``             new orders recorded: sent to the orders topic
                                       (``mode="live"``) or to the paper broker
                                       (``mode="paper"``)
``qmtl_live_fills_total``              new fills (paper)
``qmtl_live_metrics_posted_total``     MetricsUpdates the world acknowledged
``qmtl_live_last_bar_seconds``         close time (epoch s) of the newest bar processed
``qmtl_live_lag_seconds``              now minus that close time: how far the run is behind
                                       the feed's clock (for a replayed catalog, the data's age)
``qmtl_live_idle_seconds``             seconds since the run last processed a bar
``qmtl_live_run_info``                 1, labelled ``strategy``, ``run_id``, ``world``, ``mode``
=====================================  =======================================================

>>> from connectors.live.source import LiveStats
>>> m = LiveMetrics(LiveStats(), run={"strategy": "s", "run_id": "r", "world": "w",
...                                   "mode": "paper"})
>>> from dataflows.gate import Verdict
>>> m.on_verdict("s", Verdict("hold", cause="world_gone"))
>>> m.registry.get_sample_value("qmtl_live_gate_total", {"verdict": "hold"})
1
>>> m.registry.get_sample_value("qmtl_live_gate_held_total", {"cause": "world_gone"})
1
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connectors.live.source import LiveStats


class LiveMetrics(Collector):
    """The metrics of one live run (see the module docstring): a collector over the run's
    ``stats``, its order ``tally`` and metrics ``poster`` (each optional), plus the gate's
    verdicts and the newest bar, which the run reports through :meth:`on_verdict` and
    :meth:`on_output`.
    """

    def __init__(
        self,
        stats: LiveStats,
        tally: Any = None,
        poster: Any = None,
        run: dict[str, str] | None = None,
    ) -> None:
        self.stats, self.tally, self.poster = stats, tally, poster
        self.run = dict(run or {})
        self.verdicts = {"trade": 0, "flatten": 0, "hold": 0}
        self.held: dict[str, int] = {}
        self.last_bar_ns: int | None = None
        self.last_seen: float | None = None
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- what the run reports ----------------------------------------------------------------
    def on_verdict(self, _strategy: str, verdict: Any, *_row: Any) -> None:
        """Count one of the gate's decisions (called per bar by the order step)."""
        with self._lock:
            self.verdicts[verdict.kind] = self.verdicts.get(verdict.kind, 0) + 1
            if verdict.kind == "hold":
                cause = getattr(verdict, "cause", "") or "other"
                self.held[cause] = self.held.get(cause, 0) + 1

    def watch(self, on_output: Callable[[Any], None]) -> Callable[[Any], None]:
        """``on_output`` that also notes the newest bar of each output (its ``as_of``)."""

        def seen(out: Any) -> None:
            self.on_output(out)
            on_output(out)

        return seen

    def on_output(self, out: Any) -> None:
        """Note an engine output's bar time (``as_of``, epoch ns)."""
        as_of = getattr(out, "as_of", None)
        if as_of is None or getattr(out, "batch", None) is None:
            return
        with self._lock:
            if self.last_bar_ns is None or as_of > self.last_bar_ns:
                self.last_bar_ns = int(as_of)
            self.last_seen = time.monotonic()

    # -- what Prometheus reads ---------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        """The samples, read now."""
        st = self.stats
        bars = CounterMetricFamily("qmtl_live_bars", "Bars in, by kind.", labels=["kind"])
        for kind, n in (
            ("live", st.live_bars),
            ("warmup", st.warmup_bars),
            ("overlap", st.overlap),
            ("gap_filled", st.gap_filled),
        ):
            bars.add_metric([kind], n)
        yield bars
        yield CounterMetricFamily("qmtl_live_dead_letters", "Bars refused.", value=st.dead_letters)
        gate = CounterMetricFamily(
            "qmtl_live_gate", "The order gate's decisions per bar.", labels=["verdict"]
        )
        held = CounterMetricFamily(
            "qmtl_live_gate_held", "Orders held by the gate, by cause.", labels=["cause"]
        )
        with self._lock:
            verdicts = dict(self.verdicts)
            causes = dict(self.held)
            last_ns, last_seen = self.last_bar_ns, self.last_seen
        for kind, n in sorted(verdicts.items()):
            gate.add_metric([kind], n)
        yield gate
        for cause, n in sorted(causes.items()):
            held.add_metric([cause], n)
        yield held
        mode = self.run.get("mode", "")
        orders = CounterMetricFamily(
            "qmtl_live_orders", "New orders recorded (sent).", labels=["mode"]
        )
        orders.add_metric([mode], getattr(self.tally, "orders", 0))
        yield orders
        yield CounterMetricFamily(
            "qmtl_live_fills", "New fills.", value=getattr(self.tally, "fills", 0)
        )
        yield CounterMetricFamily(
            "qmtl_live_metrics_posted",
            "MetricsUpdates the world acknowledged.",
            value=getattr(self.poster, "posted", 0),
        )
        if last_ns is not None:
            yield GaugeMetricFamily(
                "qmtl_live_last_bar_seconds",
                "Close time (epoch s) of the newest bar processed.",
                value=last_ns / 1e9,
            )
            yield GaugeMetricFamily(
                "qmtl_live_lag_seconds",
                "Now minus the newest bar's close time.",
                value=time.time() - last_ns / 1e9,
            )
        if last_seen is not None:
            yield GaugeMetricFamily(
                "qmtl_live_idle_seconds",
                "Seconds since the run last processed a bar.",
                value=time.monotonic() - last_seen,
            )
        info = GaugeMetricFamily(
            "qmtl_live_run_info", "The run's identity.", labels=sorted(self.run)
        )
        info.add_metric([self.run[k] for k in sorted(self.run)], 1)
        yield info

    def serve(self, port: int, host: str = "127.0.0.1") -> Callable[[], None]:
        """Serve ``/metrics`` on ``host:port`` (a thread); returns what stops it. A port in
        use is a clear OSError.

        >>> from connectors.live.source import LiveStats
        >>> stop = LiveMetrics(LiveStats()).serve(0); stop()
        """
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self.port = server.server_port

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        return stop
