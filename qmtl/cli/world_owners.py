"""``qmtl world owner W SID [--to OWNER | --operator]`` and ``qmtl world submitters W
[--set A,B | --anyone]``: who owns a strategy and who may submit to a world (see
docs/world.md, "Who owns a strategy").

>>> from typer.testing import CliRunner
>>> from qmtl.cli.world import world_app
>>> CliRunner().invoke(world_app, ["owner", "--help"]).exit_code
0
"""

from __future__ import annotations

from typing import Annotated

import typer

from qmtl.cli.common import DebugOpt, console, fail
from qmtl.cli.world import TokenOption, UrlOption, _client, world_app
from world_api.client import DEFAULT_URL


def _who(owner: str | None) -> str:
    return "operator-owned" if owner is None else f"owned by {owner!r}"


@world_app.command()
def owner(
    world: Annotated[str, typer.Argument(help="World id.")],
    strategy_id: Annotated[str, typer.Argument(help="Strategy id.")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="Transfer the strategy to this owner (an operator token)."),
    ] = None,
    operator: Annotated[
        bool,
        typer.Option("--operator", help="Make it operator-owned (no developer may post to it)."),
    ] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Show who owns STRATEGY_ID in WORLD, or transfer it (--to, --operator; audited)."""
    if to is not None and operator:
        raise fail("give --to OWNER or --operator, not both", 2)
    with _client(url, token, debug) as client:
        if to is None and not operator:
            out = client.owner(world, strategy_id)
        else:
            out = client.transfer_owner(world, strategy_id, to)
    console.print(f"{strategy_id!r} in world {world!r} is {_who(out['owner'])}", highlight=False)


@world_app.command()
def submitters(
    world: Annotated[str, typer.Argument(help="World id.")],
    set_: Annotated[
        str | None, typer.Option("--set", help="Only these owners may submit (comma-separated).")
    ] = None,
    anyone: Annotated[
        bool, typer.Option("--anyone", help="Lift the restriction: any developer may submit.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Show or set which owners may submit to WORLD (operators always may; audited)."""
    if set_ is not None and anyone:
        raise fail("give --set A,B or --anyone, not both", 2)
    with _client(url, token, debug) as client:
        if set_ is not None:
            names = [n.strip() for n in set_.split(",") if n.strip()]
            out = client.set_submitters(world, names)
        elif anyone:
            out = client.set_submitters(world, None)
        else:
            out = client.submitters(world)
    who = "any developer" if out is None else (", ".join(out) or "nobody")
    console.print(f"world {world!r}: {who} may submit", highlight=False)
