"""``qmtl world``: serve the WorldService, manage tokens and worlds, watch activation.

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(world_app, ["--help"]).exit_code
0
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from qmtl.cli.common import DebugOpt, console, errors_as_exit, fail
from qmtl.cli.terminal import safe_markup
from qmtl.cli.world_config import preset_text, serve_logging
from qmtl.cli.world_market import market_of, read_market, set_market, shared_line
from qmtl.core.contracts import ActivationEvent, ControlEvent, EvaluationEvent
from qmtl.core.times import format_ts
from world_api import runner_client
from world_api.client import DEFAULT_URL, WorldServiceClient, WorldServiceError
from world_api.domain.policy import PolicyError, parse_policy

world_app = typer.Typer(
    help="The WorldService: serve, tokens, worlds, status.", no_args_is_help=True
)
token_app = typer.Typer(help="Bearer tokens.", no_args_is_help=True)
world_app.add_typer(token_app, name="token")

UrlOption = Annotated[str, typer.Option("--url", envvar="QMTL_WORLD_URL", help="WorldService URL.")]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="QMTL_TOKEN", help="Bearer token ($QMTL_TOKEN).")
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="QMTL_WORLD_STORE",
        help="sqlite:///path, a file path, or postgresql://... (default ~/.qmtl/world.db).",
    ),
]


@contextmanager
def _client(url: str, token: str | None, debug: bool = False) -> Iterator[WorldServiceClient]:
    """A client of the world at ``url``; its errors become the CLI's ``error:`` line."""
    with errors_as_exit(debug), WorldServiceClient(url, token) as client:
        yield client


@world_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8600,
    store: StoreOption = None,
    insecure_dev: Annotated[bool, typer.Option(help="No tokens: for a local run only.")] = False,
    kafka_brokers: Annotated[
        str | None,
        typer.Option(envvar="QMTL_KAFKA_BROKERS", help="Also publish activation events to Kafka."),
    ] = None,
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM).")
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="The certificate's private key (PEM).")
    ] = None,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(envvar="FORWARDED_ALLOW_IPS",
                     help="Proxies whose X-Forwarded-For/-Proto are trusted (comma-separated)."),
    ] = "127.0.0.1",
    log_json: Annotated[bool, typer.Option(
        help="Log one JSON object per line (with the request id) instead of text.")] = False,
    metrics_token: Annotated[str | None, typer.Option(
        envvar="QMTL_METRICS_TOKEN",
        help="Make /metrics want this bearer token (default: public).")] = None,
    token_ttl: Annotated[float, typer.Option(
        min=0, help="Seconds a token that authenticated is remembered (a revocation takes "
                    "effect within it; 0: check the store on every request).")] = 2.0,
    max_streams_per_token: Annotated[int, typer.Option(
        min=1, help="Event streams one token may hold open at once (more get 429).")] = 100,
    max_updates: Annotated[int, typer.Option(
        min=1, envvar="QMTL_WORLD_MAX_UPDATES",
        help="Updates one metrics request may carry (more get 413).")] = 1_000,
    max_new_strategies: Annotated[int, typer.Option(
        min=1, envvar="QMTL_WORLD_MAX_NEW_STRATEGIES",
        help="New strategy ids one metrics request may bring (more get 422).")] = 100,
    max_strategies: Annotated[int, typer.Option(
        min=1, envvar="QMTL_WORLD_MAX_STRATEGIES",
        help="Strategies one world may hold (a request past it gets 422).")] = 10_000,
    max_queued_updates: Annotated[int, typer.Option(
        min=1, envvar="QMTL_WORLD_MAX_QUEUED_UPDATES",
        help="Updates waiting for one world before more get 429.")] = 5_000,
    max_header_bytes: Annotated[int, typer.Option(
        min=1024, help="Largest request line and headers, in bytes (more get 431).")] = 32768,
    header_timeout: Annotated[float, typer.Option(
        min=0.1, help="Seconds a connection has to send a request's headers (then 408).")] = 10.0,
    keep_alive_timeout: Annotated[float, typer.Option(
        min=0.1, help="Seconds an idle connection stays open between requests.")] = 5.0,
    max_connections_per_client: Annotated[int, typer.Option(
        min=0, help="Connections one client address may hold open (more get 503; 0: no "
                    "cap, for behind a proxy that caps them).")] = 128,
    max_connections: Annotated[int, typer.Option(
        min=1, help="Connections held open in all (more get 503); lowered to fit the "
                    "open-files limit.")] = 2048,
    tick: Annotated[float, typer.Option(
        min=0, envvar="QMTL_WORLD_TICK",
        help="Seconds between two ticks of the world's clock, which takes the weight of "
             "strategies silent past max_silence (0: never).")] = 5.0,
) -> None:
    """Serve the WorldService over HTTP or HTTPS (uvicorn)."""
    # the service loads when a command runs (see qmtl.cli): `qmtl --help` starts in a second
    import uvicorn

    from world_api.service.app import create_app
    from world_api.service.connection_limits import (
        ConnectionLimits,
        raise_open_files,
        uvicorn_options,
    )
    from world_api.service.ingest_limits import IngestLimits
    from world_api.service.store import StoreError

    tls = _check_tls(ssl_certfile, ssl_keyfile)
    logs = serve_logging(log_json)
    try:
        app = create_app(store, insecure_dev=insecure_dev, kafka_brokers=kafka_brokers,
                         metrics_token=metrics_token, token_ttl=token_ttl,
                         max_streams_per_token=max_streams_per_token,
                         ingest_limits=IngestLimits(max_updates, max_new_strategies,
                                                    max_strategies, max_queued_updates),
                         tick=tick)
    except StoreError as exc:
        raise fail(str(exc)) from None
    where = app.state.service.store.url
    scheme = "https" if tls else "http"
    console.print(f"WorldService on {scheme}://{host}:{port} · store {where}", highlight=False)
    if insecure_dev:
        console.print("[bold yellow]insecure dev mode:[/] no tokens are checked")
    else:
        console.print("create tokens with `qmtl world token create --role operator`")
    cap = raise_open_files(max_connections)
    if cap < max_connections:
        console.print(f"[bold yellow]at most {cap} connections[/] (not {max_connections}): "
                      "that is what the open-files limit (ulimit -n) leaves", highlight=False)
    limits = ConnectionLimits(max_header_bytes=max_header_bytes, header_timeout=header_timeout,
                              max_per_client=max_connections_per_client, max_total=cap)
    # event streams never end by themselves: give them 3 s to see the shutdown, then close
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=3,
                proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips,
                ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
                **uvicorn_options(limits, keep_alive_timeout), **logs)


def _check_tls(certfile: Path | None, keyfile: Path | None) -> bool:
    """True for HTTPS; a key without a certificate, or a pair that does not load, is a
    clear error before anything starts."""
    import ssl

    if certfile is None:
        if keyfile is not None:
            raise fail("--ssl-keyfile needs --ssl-certfile")
        return False
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise fail(f"cannot use the certificate {certfile}"
                   f"{f' with the key {keyfile}' if keyfile else ''}: {exc}") from None
    return True


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="viewer, developer, runner or operator.")],
    owner: Annotated[
        str, typer.Option("--owner", "--name", help="Who the token is for (default: the role).")
    ] = "",
    expires: Annotated[
        str | None,
        typer.Option(help="Expiry: a duration (30m, 12h, 90d, 2w) or an ISO date/datetime."),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Create a token; prints it once (only a salted hash is stored), its id on stderr."""
    # the store loads when a command runs (see qmtl.cli): `qmtl --help` starts in a second
    from world_api.service.auth import create_token, parse_expiry, token_id
    from world_api.service.store import StoreError, open_store

    try:
        until = parse_expiry(expires) if expires else None
        token = create_token(open_store(store), role, owner, until)
    except (ValueError, StoreError) as exc:
        raise fail(str(exc)) from None
    typer.echo(token)
    typer.echo(f"token id {token_id(token)}: shown once, keep it secret", err=True)


@token_app.command("list")
def token_list(store: StoreOption = None) -> None:
    """List the tokens: id, owner, role, times and status (never a secret or hash)."""
    from world_api.service.auth import iso
    from world_api.service.store import StoreError, open_store

    try:
        tokens = open_store(store).list_tokens()
    except StoreError as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"{len(tokens)} tokens")
    for col in ("id", "owner", "role", "created", "expires", "status"):
        table.add_column(col)
    for tok in tokens:
        table.add_row(tok.id, tok.owner, tok.role, iso(tok.created), iso(tok.expires),
                      tok.status() if tok.revoked is None
                      else f"revoked {iso(tok.revoked)}")
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `token list`).")],
    store: StoreOption = None,
) -> None:
    """Revoke a token: the service refuses it from its next request on (401)."""
    from world_api.service.auth import iso
    from world_api.service.store import NotFound, StoreError, open_store

    try:
        info = open_store(store).revoke_token(token_id, actor=f"cli:{_user()}")
    except (NotFound, StoreError) as exc:
        raise fail(str(exc)) from None
    console.print(f"token {info.id} ({info.owner}, {info.role}) revoked at {iso(info.revoked)}",
                  highlight=False)


@token_app.command("audit")
def token_audit(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows to print.")] = 50,
    store: StoreOption = None,
) -> None:
    """Print the service's own audit rows, newest first: tokens created and revoked, failed
    authentications (401) and refused roles (403)."""
    from world_api.service.auth import iso
    from world_api.service.store import StoreError, open_store

    try:
        rows = open_store(store).audit_log(None, limit, newest_first=True)
    except StoreError as exc:
        raise fail(str(exc)) from None
    table = Table(title="service audit (newest first)")
    for col in ("time", "action", "actor", "owner", "detail", "request"):
        table.add_column(col)
    for r in rows:
        table.add_row(iso(r["ts"]), r["action"], r["actor"], r["owner"] or "",
                      json.dumps(r["detail"]), r["request_id"])
    console.print(table)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@world_app.command()
def create(
    world: Annotated[str, typer.Argument(help="World id.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    capital: Annotated[float, typer.Option(help="Capital.")] = 1_000_000.0,
    mode: Annotated[str, typer.Option(help="backtest, paper or live.")] = "paper",
    policy: Annotated[Path | None, typer.Option(help="Policy file (YAML or JSON).")] = None,
    preset: Annotated[str | None, typer.Option(
        help="A policy preset: conservative, balanced or aggressive.")] = None,
    market: Annotated[Path | None, typer.Option(
        help="Market file (YAML or JSON): universe, interval, window, execution, source.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Create a world, optionally with a policy file or a preset (see docs/world.md).

    Every world starts with the default policy as version 1; a policy file or preset
    becomes version 2 (``qmtl world policy`` sets later versions)."""
    if policy and preset:
        raise fail("pass --policy or --preset, not both")
    text = _read_policy(policy) if policy else preset_text(preset) if preset else None
    source = policy or (f"preset {preset!r}" if preset else None)
    declared = read_market(market) if market else None
    with _client(url, token, debug) as client:
        client.create_world(world, name=name, capital=capital, mode=mode)
        if declared is not None:
            set_market(client, world, declared, market, created=True)
        if source is None or text is None:
            console.print(f"created world {world!r} with the default policy (version 1)",
                          highlight=False)
            return
        try:
            out = client.put_policy(world, text)
        except WorldServiceError as exc:
            raise fail(
                f"created world {world!r} with the default policy (version 1), but setting "
                f"the policy from {source} failed: {exc}; retry with `qmtl world policy "
                f"{world} {policy or 'FILE'}`"
            ) from None
    console.print(
        f"created world {world!r}; policy from {source} is version {out['version']} "
        "(version 1 is the default every world starts with)",
        highlight=False,
    )


def _read_policy(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise fail(f"cannot read policy file {path}: {exc}") from None
    try:
        parse_policy(text)
    except PolicyError as exc:
        raise fail(f"{path}: invalid policy: {exc}") from None
    return text


@world_app.command()
def policy(
    world: Annotated[str, typer.Argument(help="World id.")],
    file: Annotated[Path, typer.Argument(help="Policy file (YAML or JSON).")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Set a world's policy (a new version)."""
    text = _read_policy(file)
    with _client(url, token, debug) as client:
        out = client.put_policy(world, text)
    console.print(
        f"world {world!r}: policy version {out['version']}, {len(out['events'])} activation events",
        highlight=False,
    )


@world_app.command()
def market(
    world: Annotated[str, typer.Argument(help="World id.")],
    file: Annotated[Path | None, typer.Argument(
        help="Market file (YAML or JSON); without it, print the world's market.")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Declare a world's market (a new version; operator) or print it."""
    data = read_market(file) if file else None
    with _client(url, token, debug) as client:
        if data is None or file is None:
            console.print(f"world {world!r}: market {market_of(client, world)}", highlight=False)
            return
        set_market(client, world, data, file)


@world_app.command()
def status(
    world: Annotated[str, typer.Argument(help="World id.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Print the world's activation table and its own return (realized and pro forma)."""
    with _client(url, token, debug) as client:
        snap = client.activation(world)
        views = {v["strategy_id"]: v for v in client.strategies(world)}
        returns = client.world_metrics(world)
        declared = market_of(client, world)
        runners = _runners(client, world)
    table = Table(
        title=f"world {safe_markup(world)} · seq {snap['seq']} · policy v{snap['policy_version']}"
    )
    for col in ("strategy", "status", "weight", "rank", "sharpe", "n_bars", "hints"):
        table.add_column(
            col, justify="right" if col in ("weight", "rank", "sharpe", "n_bars") else "left"
        )
    for row in snap["strategies"]:
        v = views.get(row["strategy_id"], {})
        sharpe = v.get("metrics", {}).get("sharpe")
        table.add_row(
            safe_markup(row["strategy_id"]),
            safe_markup(row["status"]),
            f"{row['weight']:.3f}",
            str(row["rank"] or "-"),
            "-" if sharpe is None else f"{sharpe:.2f}",
            str(v.get("n_bars", "")),
            safe_markup(
                "; ".join(
                    [*([row["override"]] if row.get("override") else []), *v.get("hints", [])]
                )
            ),
        )
    console.print(table)
    console.print(f"market: {safe_markup(declared)}", highlight=False)
    if snap.get("frozen"):
        console.print(
            f"[bold yellow]frozen:[/] {safe_markup(snap['frozen'])}: the world's orders are held"
        )
    if runners:
        console.print(runner_table(world, runners))
    own = Table(title=f"world {safe_markup(world)} · its own return")
    names = ("sharpe", "total_return", "max_drawdown", "volatility", "cagr")
    for col in ("kind", "bars", *names):
        own.add_column(col, justify="left" if col == "kind" else "right")
    for kind in ("realized", "pro_forma"):
        part = returns[kind]
        own.add_row(kind.replace("_", " "), str(part["n_bars"]),
                    *(f"{part['metrics'].get(m, 0.0):.4f}" for m in names))
    console.print(own)
    console.print(shared_line(returns["pro_forma"]), highlight=False)


@world_app.command()
def events(
    world: Annotated[str, typer.Argument(help="World id.")],
    after: Annotated[int, typer.Option(help="Start after this seq.")] = 0,
    follow: Annotated[bool, typer.Option(help="Keep streaming new events.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    debug: DebugOpt = False,
) -> None:
    """Print the world's activation events (Server-Sent Events), one JSON line each;
    with ``--follow``, keep printing new ones as the world stores them (Ctrl-C stops)."""
    with _client(url, token, debug) as client, client.events(
        world, after=after, follow=follow
    ) as stream:
        for event in stream:
            if isinstance(event, ActivationEvent | ControlEvent | EvaluationEvent):
                typer.echo(json.dumps(event.model_dump()))


def env_token() -> str | None:
    """The token from ``$QMTL_TOKEN``, if set.

    >>> isinstance(env_token(), (str, type(None)))
    True
    """
    return os.environ.get("QMTL_TOKEN")


def _runners(client: WorldServiceClient, world: str) -> list[dict[str, Any]]:
    """The world's runners (none from a service older than runners)."""
    try:
        return runner_client.runners(client, world)
    except WorldServiceError as exc:
        if exc.status in (404, 405):
            return []
        raise


def runner_table(world: str, runners: list[dict[str, Any]]) -> Table:
    """The runners of ``world`` (``qmtl world run``): alive, their strategies (a shadow
    run marked), each one's lag and last bar.

    >>> runner_table("w", [{"runner": "r1", "alive": True, "age_s": 0.5, "strategies": ["a"],
    ...     "report": {"strategies": {"a": {"lag_s": 1.0, "last_bar": 0}}}}]).row_count
    1
    """
    table = Table(title=f"world {safe_markup(world)} · runners")
    for col in ("runner", "alive", "heartbeat", "strategies", "lag", "last bar", "refused"):
        table.add_column(col)
    for r in runners:
        report = r.get("report", {})
        runs = report.get("strategies", {})
        lags = [v["lag_s"] for v in runs.values() if v.get("lag_s") is not None]
        lasts = [v["last_bar"] for v in runs.values() if v.get("last_bar") is not None]
        table.add_row(
            safe_markup(r["runner"]),
            "yes" if r.get("alive") else "[bold red]no[/]",
            f"{r.get('age_s', 0.0):.1f} s ago",
            safe_markup(", ".join(f"{s} (shadow)" if runs.get(s, {}).get("shadow") else s
                                  for s in r.get("strategies", []))),
            f"{max(lags):.1f} s" if lags else "-",
            format_ts(max(lasts)) if lasts else "-",
            safe_markup("; ".join(f"{k}: {v}" for k, v in report.get("refused", {}).items())),
        )
    return table
