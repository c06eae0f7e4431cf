"""What ``qmtl world`` and ``qmtl submit`` read from the environment and the config file:
the default world, the policy presets' text and the logging of ``qmtl world serve``.

**The default world** (``qmtl submit`` without ``--world``) is the first of: ``--world``;
the environment variable ``QMTL_WORLD``; ``world = "NAME"`` in the config file
(``$QMTL_CONFIG``, else ``~/.qmtl/config.toml``). With none of them the command stops with
an error that lists the three.

>>> default_world("given")
'given'
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from qmtl.cli.common import fail

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
    """uvicorn's logging arguments for ``qmtl world serve``. With ``--log-json`` logging is
    switched to JSON at once (so what the app says while it starts is JSON too): every line
    is a JSON object, a request's with its id (``world_api.service.observability``), and
    uvicorn's own access log is replaced by the ``qmtl.world.access`` lines; else uvicorn's
    text logs as before.

    >>> serve_logging(False)
    {}
    """
    if not log_json:
        return {}
    import logging.config

    from world_api.service.observability import json_logging

    config = json_logging()
    logging.config.dictConfig(config)
    return {"log_config": config, "access_log": False}


def preset_text(name: str) -> str:
    """The YAML of the policy preset ``name`` (a clear error for an unknown one).

    >>> "top_k: 10" in preset_text("balanced")
    True
    """
    from world_api.domain.presets import PRESETS

    if name not in PRESETS:
        raise fail(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]
