"""``qmtl world approve W SID``: approve a strategy's waiting promotion from paper to live
(the world's policy says ``promotion.live.approval: operator``; see docs/world.md, "Stages").

>>> from typer.testing import CliRunner
>>> from qmtl.cli.world import world_app
>>> "approve" in CliRunner().invoke(world_app, ["--help"]).output
True
"""

from __future__ import annotations

from typing import Annotated

import typer

from qmtl.cli.common import DebugOpt, console
from qmtl.cli.world import TokenOption, UrlOption, _client, world_app
from world_api.client import DEFAULT_URL


@world_app.command()
def approve(
    world: Annotated[str, typer.Argument(help="World id.")],
    strategy_id: Annotated[str, typer.Argument(help="Strategy id.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Approve STRATEGY_ID's promotion to live in WORLD (an operator token); its live run
    switches from paper fills to real orders. Exits 1 when it does not wait for approval
    (the message says why)."""
    with _client(url, token, debug) as client:
        out = client.approve(world, strategy_id)
    seqs = ", ".join(str(e["seq"]) for e in out["events"])
    console.print(f"{strategy_id} is {out['stage']} in world {world} (event seq {seqs})")
