"""``qmtl world book W``, ``reconcile W [--adopt]``, ``halt W``, ``resume W`` and
``book-run W``: the world's book (see docs/live.md, "The world's book").

>>> from typer.testing import CliRunner
>>> from qmtl.cli.world import world_app
>>> CliRunner().invoke(world_app, ["book", "--help"]).exit_code
0
"""

from __future__ import annotations

import getpass
import os
import threading
from typing import Annotated

import typer
from rich.table import Table

from qmtl.cli.common import DebugOpt, console, errors_as_exit, fail
from qmtl.cli.terminal import safe_markup
from qmtl.cli.world import TokenOption, UrlOption, world_app
from qmtl.cli.world_ops import parse_weights
from world_api.client import DEFAULT_URL, WorldServiceClient

BookStoreOpt = Annotated[
    str | None,
    typer.Option(
        "--book-store",
        envvar="QMTL_BOOK_STORE",
        help="The book's ledger: a file path, sqlite:///path or postgresql://... "
        "(default ~/.qmtl/book.db).",
    ),
]
BrokerOpt = Annotated[
    str,
    typer.Option(
        "--broker",
        envvar="QMTL_BROKER",
        help="paper:PATH[?cash=..] or ccxt:EXCHANGE[?sandbox=1&config=FILE].",
    ),
]
SymbolsOpt = Annotated[str, typer.Option("--symbols", help="Symbols the book trades, A,B.")]
WhoOpt = Annotated[str | None, typer.Option("--who", help="Who acts (default: $USER).")]


def _who(who: str | None) -> str:
    return who or os.environ.get("USER") or getpass.getuser()


def _symbols(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


@world_app.command()
def book(
    world: Annotated[str, typer.Argument(help="World id.")],
    fills: Annotated[int, typer.Option(help="How many recent fills to show.")] = 10,
    book_store: BookStoreOpt = None,
    debug: DebugOpt = False,
) -> None:
    """The world's book: positions, open orders, recent fills, P&L, and per strategy its
    model P&L against the P&L of its share of the real fills."""
    from qmtl.book_run.store import open_book_store

    with errors_as_exit(debug):
        store = open_book_store(book_store)
        if world not in store.worlds():
            raise fail(f"world {world!r} has no book in {store.url}")
        led = store.load(world)
        store.close()
    eq = led.equity()
    console.print(
        f"book of [bold]{safe_markup(world)}[/]: {led.state}"
        f"{' (' + safe_markup(led.state_reason) + ')' if led.state_reason else ''}; "
        f"equity {eq:,.2f} {led.currency}, cash {led.cash:,.2f}, "
        f"day {eq - led.day_start:+,.2f}, from peak {eq - led.peak:+,.2f}"
    )
    t = Table(title="positions")
    for c in ("symbol", "qty", "price", "value", "external"):
        t.add_column(c, justify="right" if c != "symbol" else "left")
    for s, q in sorted(led.positions.items()):
        p = led.prices.get(s, 0.0)
        t.add_row(s, f"{q:g}", f"{p:g}", f"{q * p:,.2f}", f"{led.external.get(s, 0.0):g}")
    console.print(t)
    t = Table(title="open orders")
    for c in ("client id", "symbol", "qty", "filled", "status"):
        t.add_column(c)
    for o in led.orders.values():
        if o.open:
            t.add_row(o.client_id, o.symbol, f"{o.qty:g}", f"{o.filled:g}", o.status)
    console.print(t)
    t = Table(title=f"recent fills (last {fills})")
    for c in ("client id", "trade", "qty", "price", "fee"):
        t.add_column(c)
    for f in led.fills[-fills:]:
        t.add_row(f.client_id, f.trade_id, f"{f.qty:g}", f"{f.price:g}", f"{f.fee:.4f}")
    console.print(t)
    t = Table(title="strategies: model vs realized")
    for c in ("strategy", "weight", "model P&L", "realized P&L", "fees", "shortfall"):
        t.add_column(c, justify="left" if c == "strategy" else "right")
    sids = sorted(set(led.targets) | {s for s, _ in led.strategy_pos} | set(led.weights))
    for sid in sids:
        model, real = led.model_pnl.get(sid, 0.0), led.strategy_pnl(sid)
        w = led.weights.get(sid)
        t.add_row(
            sid,
            "inactive" if w is None else f"{w:g}",
            f"{model:,.2f}",
            f"{real:,.2f}",
            f"{led.strategy_fees.get(sid, 0.0):,.2f}",
            f"{model - real:,.2f}",
        )
    console.print(t)
    for a in led.anomalies[-5:]:
        console.print(f"[yellow]anomaly:[/] {safe_markup(a)}")


@world_app.command()
def reconcile(
    world: Annotated[str, typer.Argument(help="World id.")],
    broker: BrokerOpt,
    symbols: SymbolsOpt = "",
    adopt: Annotated[
        bool, typer.Option(help="Take the broker's state as the ledger's (audited).")
    ] = False,
    why: Annotated[str, typer.Option(help="Why (kept with --adopt).")] = "",
    who: WhoOpt = None,
    book_store: BookStoreOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Compare the book's ledger with its broker (positions, open orders, cash). Exit 0
    when they agree, 3 when they differ; `--adopt` takes the broker's state (written to the
    ledger with who and why)."""
    from qmtl.book_run.process import broker_from_spec
    from qmtl.book_run.service import BookConfig, BookService
    from qmtl.book_run.store import open_book_store

    with errors_as_exit(debug):
        syms = _symbols(symbols)
        store = open_book_store(book_store)
        svc = BookService(store, broker_from_spec(broker, syms), BookConfig(world, symbols=syms))
        svc.sync()
        diffs = svc.adopt(_who(who), why or "reconcile --adopt") if adopt else svc.differences()
        store.close()
    for d in diffs:
        console.print(safe_markup(str(d)))
    if adopt:
        console.print(f"adopted the broker's state ({len(diffs)} differences) as {_who(who)}")
    elif diffs:
        raise fail(
            f"{len(diffs)} differences: the book refuses to trade until they agree "
            f"or `qmtl world reconcile {world} --adopt`",
            code=3,
        )
    else:
        console.print("the book and its broker agree")


def _state(
    world: str, state: str, reason: str, who: str | None, book_store: str | None, debug: bool
) -> None:
    from qmtl.book_run.store import open_book_store

    with errors_as_exit(debug):
        store = open_book_store(book_store)
        store.append(world, [{"kind": "state", "state": state, "reason": reason, "who": _who(who)}])
        store.close()
    console.print(
        f"book of {safe_markup(world)}: {state} ({safe_markup(reason)}), by "
        f"{safe_markup(_who(who))}"
    )


@world_app.command()
def halt(
    world: Annotated[str, typer.Argument(help="World id.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "operator halt",
    reducing: Annotated[
        bool, typer.Option(help="REDUCING instead: only orders that reduce exposure go.")
    ] = False,
    who: WhoOpt = None,
    book_store: BookStoreOpt = None,
    debug: DebugOpt = False,
) -> None:
    """HALTED: no order of the world's book goes (cancels still do), until `resume`."""
    _state(world, "REDUCING" if reducing else "HALTED", reason, who, book_store, debug)


@world_app.command()
def resume(
    world: Annotated[str, typer.Argument(help="World id.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "operator resume",
    who: WhoOpt = None,
    book_store: BookStoreOpt = None,
    debug: DebugOpt = False,
) -> None:
    """ACTIVE again after `halt` (or an automatic halt)."""
    _state(world, "ACTIVE", reason, who, book_store, debug)


@world_app.command("book-run")
def book_run(
    world: Annotated[str, typer.Argument(help="World id.")],
    broker: BrokerOpt,
    symbols: SymbolsOpt,
    targets: Annotated[
        str, typer.Option(help="kafka:BROKERS (the targets topic) or a JSON-lines FILE.")
    ],
    weights: Annotated[
        list[str] | None,
        typer.Option(
            "--weight",
            help="SID=W: fixed world weights instead of following the world (a dry run).",
        ),
    ] = None,
    risk: Annotated[
        list[str] | None,
        typer.Option(
            "--risk",
            help="LIMIT=VALUE: max_order_notional, max_position_notional, max_gross, "
            "max_net, max_orders, window_s, collar, daily_loss, max_drawdown.",
        ),
    ] = None,
    band: Annotated[float, typer.Option(help="No-trade band, a fraction of equity.")] = 0.0,
    min_notional: Annotated[float, typer.Option(help="Minimum order notional.")] = 0.0,
    inactive: Annotated[
        str, typer.Option(help="hold or flatten an inactive strategy's part.")
    ] = "hold",
    reconcile_every: Annotated[float, typer.Option(help="Seconds between reconciliations.")] = 60.0,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    book_store: BookStoreOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run the world's book: read targets, follow the world's activation, decide, check
    risk, send to the broker, reconcile at start (exit 3 when the broker differs) and
    periodically."""
    from connectors.live.world_link import ActivationSubscriber
    from dataflows.gate import ActivationBook
    from qmtl.book.decide import BookPolicy
    from qmtl.book.risk import RiskLimits
    from qmtl.book_run.process import Loop, broker_from_spec, world_poster
    from qmtl.book_run.service import BookConfig, BookService
    from qmtl.book_run.store import open_book_store
    from qmtl.book_run.targets import FileTargets, KafkaTargets

    stop = threading.Event()
    with errors_as_exit(debug):
        if inactive not in ("hold", "flatten"):
            raise fail(f"--inactive must be hold or flatten, got {inactive!r}", code=2)
        limits: dict[str, float] = {}
        for item in risk or []:
            name, _, value = item.partition("=")
            if name not in RiskLimits.__dataclass_fields__ or not value:
                raise fail(f"--risk expects LIMIT=VALUE with a known limit, got {item!r}", code=2)
            limits[name] = int(value) if name == "max_orders" else float(value)
        policy = BookPolicy(
            band=band,
            min_notional=min_notional,
            inactive=inactive,  # type: ignore[arg-type]
            limits=RiskLimits(**limits),
        )  # type: ignore[arg-type]
        syms = _symbols(symbols)
        store = open_book_store(book_store)
        svc = BookService(
            store, broker_from_spec(broker, syms), BookConfig(world, symbols=syms, policy=policy)
        )
        svc.start()
        source = (
            KafkaTargets(targets.removeprefix("kafka:"), world)
            if targets.startswith("kafka:")
            else FileTargets(targets, world)
        )
        activation, sub, client = None, None, None
        if not weights:  # following the world: its realized return is the book's
            activation = ActivationBook(world)
            sub = ActivationSubscriber(activation, url, token).start()
            client = WorldServiceClient(url, token)
        loop = Loop(
            svc,
            source,
            activation,
            parse_weights(weights) if weights else None,
            reconcile_every=reconcile_every,
            post_returns=world_poster(client, world) if client is not None else None,
        )
        console.print(f"book of {safe_markup(world)} trading ({len(syms)} symbols)")
        try:
            loop.run(stop)
        except KeyboardInterrupt:
            pass
        finally:
            if sub is not None:
                sub.close()
            if client is not None:
                client.close()
            source.close()
            store.close()
