"""``qmtl world update | delete``, the policy presets of ``qmtl world create --preset``, and
the default world of ``qmtl submit``.

The commands are attached to the ``world`` group when :mod:`qmtl.cli.world` loads.

**The default world** (``qmtl submit`` without ``--world``) is the first of: ``--world``;
the environment variable ``QMTL_WORLD``; ``world = "NAME"`` in the config file
(``$QMTL_CONFIG``, else ``~/.qmtl/config.toml``). With none of them the command stops with
an error that lists the three.

>>> from typer.testing import CliRunner
>>> from qmtl.cli.world import world_app
>>> CliRunner().invoke(world_app, ["delete", "--help"]).exit_code
0
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from qmtl.cli.common import DebugOpt, console, fail
from qmtl.cli.world import TokenOption, UrlOption, _client, world_app
from world_api.client import DEFAULT_URL

CONFIG_ENV = "QMTL_CONFIG"
WORLD_ENV = "QMTL_WORLD"


def config_path() -> Path:
    """The config file: ``$QMTL_CONFIG``, else ``~/.qmtl/config.toml``.

    >>> config_path().name in ("config.toml", os.environ.get(CONFIG_ENV, "x").split("/")[-1])
    True
    """
    return Path(os.environ.get(CONFIG_ENV) or Path.home() / ".qmtl" / "config.toml")


def default_world(given: str | None = None) -> str:
    """The world to use (see the module docstring for the order); a ``typer.Exit`` with a
    clear error when none is set or the config file cannot be read.

    >>> default_world("w1")
    'w1'
    """
    if given:
        return given
    env = os.environ.get(WORLD_ENV, "").strip()
    if env:
        return env
    path = config_path()
    if path.is_file():
        try:
            config = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise fail(f"cannot read the config file {path}: {exc}") from None
        world = config.get("world")
        if world is not None and (not isinstance(world, str) or not world.strip()):
            raise fail(f"{path}: world must be a world id (a non-empty string), got {world!r}")
        if world:
            return world.strip()
    raise fail(f"no world given: pass --world W, set {WORLD_ENV}=W, or write world = \"W\" "
               f"in {path}")


def serve_logging(log_json: bool) -> dict[str, Any]:
    """uvicorn's logging arguments for ``qmtl world serve``: with ``--log-json`` every line
    is a JSON object with the request id (``world_api.service.observability``) and
    uvicorn's own access log is replaced by ``qmtl.world.access`` lines; else uvicorn's
    text logs as before.

    >>> serve_logging(False)
    {}
    >>> sorted(serve_logging(True))
    ['access_log', 'log_config']
    """
    if not log_json:
        return {}
    from world_api.service.observability import json_logging

    return {"log_config": json_logging(), "access_log": False}


def preset_text(name: str) -> str:
    """The YAML of the policy preset ``name`` (a clear error for an unknown one).

    >>> "top_k: 10" in preset_text("balanced")
    True
    """
    from world_api.domain.presets import PRESETS

    if name not in PRESETS:
        raise fail(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


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
        out = client.call("PATCH", f"/worlds/{world}", json=body)
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
        out = client.call("DELETE", f"/worlds/{world}",
                          params={"force": "true"} if force else None)
    total = sum(n for table, n in out["rows"].items() if table != "worlds")
    held = f"; {len(out['holders'])} held positions ({', '.join(out['holders'])})" \
        if out["holders"] else ""
    console.print(f"deleted world {world!r}: {total} rows{held}", highlight=False)
