"""``qmtl world update | delete``: change or delete a world (see docs/world.md,
"Managing worlds"). The commands are attached to the ``world`` group when :mod:`qmtl.cli`
loads.

>>> from typer.testing import CliRunner
>>> from qmtl.cli.world import world_app
>>> CliRunner().invoke(world_app, ["delete", "--help"]).exit_code
0
"""

from __future__ import annotations

from typing import Annotated

import typer

from qmtl.cli.common import DebugOpt, console, fail
from qmtl.cli.world import TokenOption, UrlOption, _client, world_app
from world_api.client import DEFAULT_URL, seg


@world_app.command()
def update(
    world: Annotated[str, typer.Argument(help="World id.")],
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    capital: Annotated[float | None, typer.Option(help="New capital (> 0).")] = None,
    mode: Annotated[str | None, typer.Option(help="New mode: backtest, paper or live.")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Change a world's name, capital or mode (audited); the options given only."""
    body = {k: v for k, v in {"name": name, "capital": capital, "mode": mode}.items()
            if v is not None}
    if not body:
        raise fail("nothing to update: pass --name, --capital or --mode")
    with _client(url, token, debug) as client:
        out = client.call("PATCH", f"/worlds/{seg(world)}", json=body)
    console.print(f"world {world!r}: name {out['name']!r}, capital {out['capital']:g}, "
                  f"mode {out['mode']}", highlight=False)


@world_app.command()
def delete(
    world: Annotated[str, typer.Argument(help="World id.")],
    force: Annotated[bool, typer.Option(
        help="Delete even while strategies hold positions (active with weight > 0 in a "
             "paper or live world).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Delete a world and all its data (policies, states, events, plans, returns, audit
    rows); asks to confirm unless `--yes`. Refused while strategies hold positions, unless
    `--force`."""
    if not yes and not typer.confirm(
            f"delete world {world!r} and all its data{' (forced)' if force else ''}?"):
        raise fail("not deleted")
    with _client(url, token, debug) as client:
        out = client.call("DELETE", f"/worlds/{seg(world)}",
                          params={"force": "true"} if force else None)
    total = sum(n for table, n in out["rows"].items() if table != "worlds")
    held = f"; {len(out['holders'])} held positions ({', '.join(out['holders'])})" \
        if out["holders"] else ""
    console.print(f"deleted world {world!r}: {total} rows{held}", highlight=False)
