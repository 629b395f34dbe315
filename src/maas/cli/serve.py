"""`maas serve`: serve registered models over REST and gRPC (Open Inference Protocol v2)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

if TYPE_CHECKING:
    from maas.config import Settings
    from maas.serving.server import Server
    from maas.serving.workers import WorkerSpec


def _parse_workers(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> int | Literal["auto"] | None:
    if value is None:
        return None
    if value == "auto":
        return "auto"
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise click.BadParameter(f"give a number of processes (1 or more) or auto, not {value!r}")


@click.command()
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option("--http-port", type=int, default=None, help="REST port, 0 for a free one [8000].")
@click.option("--grpc-port", type=int, default=None, help="gRPC port, 0 for a free one [8001].")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME[@REF]",
    help="Serve this model (repeatable); REF is a version, an alias or latest. "
    "Default: every registered model, at its production alias, else its latest version.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Serve file (YAML): models to serve, per-model batching policy, request limits.",
)
@click.option(
    "--poll-interval",
    "poll_interval_s",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds between registry polls for new versions, aliases and routes; 0: never [2].",
)
@click.option(
    "--grace-period",
    "grace_period_s",
    type=click.FloatRange(min=0),
    default=None,
    help="On SIGTERM, seconds in-flight requests get to finish [30].",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate: serve HTTPS and gRPC over TLS (with --tls-key).",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert.",
)
@click.option(
    "--tls-client-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM CA: require client certificates signed by it (mutual TLS).",
)
@click.option(
    "--no-auth",
    is_flag=True,
    default=False,
    help="Serve without authentication, even when API keys exist (local development only).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=None,
    help="Most concurrent HTTP connections and gRPC calls [no cap].",
)
@click.option(
    "--workers",
    metavar="N|auto",
    callback=_parse_workers,
    default=None,
    help="Server processes sharing the ports, each with its own model sessions; auto: one per "
    "CPU this process may use; a dead one is replaced. Per-key rate limits are shared only "
    "through Redis (MAAS_REDIS_URL); without it each worker counts on its own [1].",
)
@click.option("--worker", "is_worker", is_flag=True, hidden=True, help="Internal: one worker.")
def serve(
    host: str | None,
    http_port: int | None,
    grpc_port: int | None,
    models: tuple[str, ...],
    config_path: Path | None,
    poll_interval_s: float | None,
    grace_period_s: float | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    no_auth: bool,
    max_connections: int | None,
    workers: int | Literal["auto"] | None,
    is_worker: bool,
) -> None:
    """Serve registered models over REST and gRPC until SIGINT or SIGTERM.

    \b
    Examples:
      maas serve                                   every model, ports 8000 (REST) and 8001 (gRPC)
      maas serve --model digits@production --http-port 0 --grpc-port 0
      maas serve --config serve.yaml
      maas serve --workers auto                    one server process per CPU on the same ports
    """
    from maas.serving.workers import await_worker_spec, resolve_worker_count

    if is_worker:
        spec = await_worker_spec()
        if spec is not None:
            _serve_as_worker(spec)
        return
    flags: dict[str, object] = {
        "host": host,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "config": config_path,
        "poll_interval_s": poll_interval_s,
        "grace_period_s": grace_period_s,
        "max_connections": max_connections,
        "workers": workers,
    }
    security_flags: dict[str, object] = {
        "tls_cert_file": tls_cert,
        "tls_key_file": tls_key,
        "tls_client_ca_file": tls_client_ca,
        "no_auth": no_auth or None,
    }
    flags = {k: v for k, v in flags.items() if v is not None}
    security_flags = {k: v for k, v in security_flags.items() if v is not None}
    settings = _settings(flags, security_flags)
    if settings.security.no_auth:
        click.echo(
            "warning: authentication is OFF (--no-auth): anyone who can reach the "
            "server can use every model and endpoint",
            err=True,
        )
    count = resolve_worker_count(settings.serve.workers)
    if count > 1:
        _supervise(settings, list(models) or None, count, flags, security_flags)
        return
    from maas.logs import configure_logging
    from maas.serving.server import serve_until_signalled

    configure_logging(settings.log_level, settings.log_format)
    run_async(serve_until_signalled(settings, list(models) or None, on_started=_announce))


def _settings(flags: dict[str, Any], security_flags: dict[str, Any]) -> Settings:
    """Settings from the flags given (None left out), then the environment."""
    from maas.config import SecuritySettings, ServeSettings, load_settings

    serve_settings = ServeSettings(**flags)
    security = SecuritySettings(**security_flags)
    return load_settings(serve=serve_settings, security=security)


def _supervise(
    settings: Settings,
    models: list[str] | None,
    count: int,
    flags: dict[str, Any],
    security_flags: dict[str, Any],
) -> None:
    """Run `count` workers on the same ports (see `maas.serving.workers`)."""
    from maas.logs import configure_logging
    from maas.serving.workers import WorkerSpec, supervise

    def plain(values: dict[str, Any]) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}

    spec = WorkerSpec(
        index=0,
        count=count,
        models=models,
        serve={**plain(flags), "workers": 1},
        security=plain(security_flags),
    )
    scheme = "https" if settings.security.tls_cert_file is not None else "http"

    def announce(http_port: int, grpc_port: int) -> None:
        host = settings.serve.host
        tls = " over TLS" if scheme == "https" else ""
        click.echo(
            f"maas serving on {scheme}://{host}:{http_port} (REST) and {host}:{grpc_port} "
            f"(gRPC){tls} with {count} workers"
        )

    configure_logging(settings.log_level, settings.log_format)
    code = run_async(supervise(spec, settings, on_started=announce))
    if code != 0:
        raise SystemExit(code)  # click returns, not exits, on its own Exit here


def _serve_as_worker(spec: WorkerSpec) -> None:
    """One worker of `maas serve --workers N`: the supervisor's settings, the shared ports."""
    from maas.logs import configure_logging
    from maas.serving.workers import serve_as_worker

    settings = _settings(spec.serve, spec.security)
    configure_logging(settings.log_level, settings.log_format)
    run_async(serve_as_worker(spec, settings))


def _announce(server: Server) -> None:
    host = server.host
    grpc = f" and {host}:{server.grpc_port} (gRPC)" if server.grpc_port is not None else ""
    tls = " over TLS" if server.scheme == "https" else ""
    click.echo(f"maas serving on {server.scheme}://{host}:{server.http_port} (REST){grpc}{tls}")


def run_async(main: Any) -> Any:
    """Run a coroutine to completion, on uvloop when it is installed; its result."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
