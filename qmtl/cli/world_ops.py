"""``qmtl world plan | apply | override``: operate a world (commands of the ``world`` group).

>>> from typer.testing import CliRunner
>>> from qmtl.cli.world import world_app
>>> CliRunner().invoke(world_app, ["override", "--help"]).exit_code
0
>>> parse_duration("90m"), parse_duration("45")
(5400.0, 45.0)
>>> parse_weights(["a=0.3", "b=0.2"])
{'a': 0.3, 'b': 0.2}
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich.table import Table

from qmtl.cli.common import DebugOpt, console, fail
from qmtl.cli.world import TokenOption, UrlOption, _client, world_app
from world_api.client import DEFAULT_URL

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``30``, ``30s``, ``15m``, ``2h`` or ``1d``; a clear error otherwise.

    >>> parse_duration("1.5h")
    5400.0
    """
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise typer.BadParameter(f"expected a duration like 30s, 15m, 2h or 1d, got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_weights(items: list[str]) -> dict[str, float]:
    """``SID=WEIGHT`` pairs as a dict; a clear error for a malformed one.

    >>> try:
    ...     parse_weights(["a=x"])
    ... except typer.BadParameter as exc:
    ...     print(exc.message)
    expected SID=WEIGHT with a number, got 'a=x'
    """
    out = {}
    for item in items:
        sid, _, value = item.partition("=")
        try:
            out[sid.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"expected SID=WEIGHT with a number, got {item!r}") from None
        if not sid.strip():
            raise typer.BadParameter(f"expected SID=WEIGHT, got {item!r}")
    return out


def apply_lines(control: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[str]:
    """The lines ``qmtl world apply`` prints: the apply's steps (control events) and the
    activation events it caused, together in seq order (the order they happened).

    >>> apply_lines([{"seq": 1, "step": "freeze"}, {"seq": 4, "step": "unfreeze",
    ...              "outcome": "applied"}],
    ...             [{"seq": 3, "strategy_id": "a", "active": True, "weight": 0.5}])
    ['seq      1  freeze', 'seq      3  a: active 0.5000', 'seq      4  unfreeze (applied)']
    """
    lines = []
    for c in control:
        extra = f" ({c['outcome']})" if c.get("outcome") else ""
        lines.append((c["seq"], f"seq {c['seq']:>6}  {c['step']}{extra}"))
    for e in events:
        state = f"active {e['weight']:.4f}" if e["active"] else "inactive"
        lines.append((e["seq"], f"seq {e['seq']:>6}  {e['strategy_id']}: {state}"))
    return [text for _, text in sorted(lines, key=lambda x: x[0])]


@world_app.command()
def plan(
    world: Annotated[str, typer.Argument(help="World id.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Make a plan: the allocation the world proposes now and what it would change."""
    with _client(url, token, debug) as client:
        out = client.plan(world)
    table = Table(title=f"plan {out['plan_id']} · world {world} · at seq {out['base_seq']}")
    for col in ("strategy", "now", "proposed"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for sid in sorted(set(out["current"]) | set(out["proposed"])):
        table.add_row(sid, f"{out['current'].get(sid, 0.0):.4f}",
                      f"{out['proposed'].get(sid, 0.0):.4f}")
    console.print(table)
    console.print(f"{len(out['changes'])} changes; apply with `qmtl world apply {world} "
                  f"{out['plan_id']}`", highlight=False)


@world_app.command()
def apply(
    world: Annotated[str, typer.Argument(help="World id.")],
    plan_id: Annotated[str, typer.Argument(help="The plan's id (from `qmtl world plan`).")],
    weight: Annotated[list[str] | None, typer.Option(
        "--weight", help="Override a weight: SID=WEIGHT (repeatable).")] = None,
    drain: Annotated[float, typer.Option(
        min=0.0, max=60.0, help="Seconds to wait for orders in flight while frozen.")] = 1.0,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Apply a plan in two phases: freeze the world's gates, drain, switch, unfreeze."""
    overrides = parse_weights(weight or [])
    with _client(url, token, debug) as client:
        out = client.apply(world, plan_id, overrides, drain=drain)
    for line in apply_lines(out["control"], out["events"]):
        console.print(line, highlight=False)
    console.print(f"plan {plan_id} applied to world {world!r}", highlight=False)


@world_app.command()
def override(
    world: Annotated[str, typer.Argument(help="World id.")],
    strategy_id: Annotated[str, typer.Argument(help="Strategy id.")],
    state: Annotated[str | None, typer.Option(
        help="Force the strategy 'active' or 'inactive'.")] = None,
    weight: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Pin its weight, > 0 (implies --state active).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log).")] = None,
    expires_in: Annotated[str | None, typer.Option(
        "--for", help="Expire after this long: 30m, 2h, 1d (default: until cleared).")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Clear the override.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Force a strategy active or inactive or pin its weight, until cleared (--clear) or
    expired (--for); it holds across metric updates."""
    if clear:
        if state or weight is not None or expires_in:
            raise fail("--clear takes no --state, --weight or --for", 2)
        with _client(url, token, debug) as client:
            out = client.clear_override(world, strategy_id)
        console.print(f"override of {strategy_id!r} cleared; {len(out['events'])} "
                      "activation events", highlight=False)
        return
    if weight is not None:
        state = state or "active"
    if state not in ("active", "inactive"):
        raise fail("give --state active|inactive (or --weight), or --clear", 2)
    if not reason:
        raise fail("give --reason: an override says why", 2)
    seconds = parse_duration(expires_in) if expires_in else None
    with _client(url, token, debug) as client:
        out = client.put_override(world, strategy_id, state, reason, weight, seconds)
    pinned = f" at weight {weight:g}" if weight is not None else ""
    until = f" for {expires_in}" if expires_in else " until cleared"
    console.print(f"{strategy_id!r} forced {state}{pinned}{until}; {len(out['events'])} "
                  "activation events", highlight=False)
