"""`RestServer`: the REST app on granian (Rust hyper/tokio), embedded in the caller's event loop.

granian parses and frames HTTP/1.1 and HTTP/2 (h2c, and h2 over TLS through ALPN), enforces the
header limits and time-outs, applies write back-pressure and terminates TLS (and mTLS); maas
writes no HTTP code of its own. Requests run as asyncio tasks on the caller's loop (the
`asyncio` task implementation), so deadlines can cancel them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from typing import TYPE_CHECKING

from granian.constants import HTTPModes, Interfaces, SSLProtocols, TaskImpl
from granian.http import HTTP1Settings, HTTP2Settings
from granian.server.embed import Server as GranianServer

from maas.errors import Unavailable
from maas.serving.admission import Admission
from maas.serving.dataplane import DataPlane
from maas.serving.rest.app import RestApp
from maas.serving.rest.routes import bind_routes

if TYPE_CHECKING:
    from maas.serving.protection import Protection

log = logging.getLogger(__name__)

HEADER_TIMEOUT_MS = 10_000  # a request's head (and an idle keep-alive gap) must come within this
MAX_HEAD_BYTES = 64 * 1024  # request line and headers together; larger heads are refused
BACKLOG = 2048
START_TIMEOUT_S = 10.0  # from start() to the port accepting connections
CANCEL_WAIT_S = 1.0  # after the grace period, how long cancelled requests get to finish


class RestServer:
    """The REST API on `host:port` (0 picks a free port; `port` tells which).

    Args:
        data_plane: what every route calls.
        host: interface to bind.
        port: port to bind (0: a free one).
        protection: authentication, limits, TLS and the in-flight cap (None: open, plain HTTP).
        shares_port: other processes serve the same port (`maas serve --workers`): bind with
            SO_REUSEPORT without first checking that the port is free.

    Signals are left to the caller: `maas serve` handles SIGINT/SIGTERM itself and calls `stop()`.
    """

    def __init__(
        self,
        data_plane: DataPlane,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        protection: Protection | None = None,
        shares_port: bool = False,
    ) -> None:
        admission = Admission(protection, data_plane.config.max_request_bytes)
        cap = protection.max_connections if protection is not None else None
        self.app = RestApp(data_plane, bind_routes(data_plane), admission, max_in_flight=cap)
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._protection = protection
        self._shares_port = shares_port
        self._granian: GranianServer | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (also when 0 was asked)."""
        if self._port is None:
            raise Unavailable("the REST server is not started")
        return self._port

    async def start(self) -> None:
        """Bind and start answering.

        Raises:
            Unavailable: the address cannot be bound.
        """
        port = self._requested_port if self._shares_port else self._claim_port()
        granian = self._granian_server(port)
        serving = asyncio.create_task(granian.serve(), name="maas-rest")
        try:
            await _wait_listening(self.host, port, serving)
        except BaseException:
            granian.stop()  # type: ignore[no-untyped-call]  # granian leaves it untyped
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(serving, CANCEL_WAIT_S)
            raise
        self._granian, self._serving, self._port = granian, serving, port
        log.info("rest.started", extra={"host": self.host, "port": port})

    def _claim_port(self) -> int:
        """Check that the port is free (granian binds with SO_REUSEPORT, which would share a
        port another server holds), and pick one when 0 was asked."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((self.host, self._requested_port))
            except OSError as err:
                reason = "the port is in use" if err.errno == errno.EADDRINUSE else err.strerror
                raise Unavailable(
                    f"cannot listen on {self.host}:{self._requested_port}: {reason}"
                ) from err
            return int(probe.getsockname()[1])

    def _granian_server(self, port: int) -> GranianServer:
        tls = self._protection.tls if self._protection is not None else None
        return GranianServer(
            self.app,
            address=self.host,
            port=port,
            interface=Interfaces.RSGI,
            task_impl=TaskImpl.asyncio,  # real asyncio tasks: deadlines cancel them
            http=HTTPModes.auto,
            websockets=False,
            backlog=BACKLOG,
            http1_settings=HTTP1Settings(
                header_read_timeout=HEADER_TIMEOUT_MS,
                keep_alive=True,
                max_buffer_size=MAX_HEAD_BYTES,
            ),
            http2_settings=HTTP2Settings(max_headers_size=MAX_HEAD_BYTES),
            log_enabled=False,
            ssl_cert=tls.cert_file if tls is not None else None,
            ssl_key=tls.key_file if tls is not None else None,
            ssl_ca=tls.client_ca_file if tls is not None else None,
            ssl_client_verify=tls is not None and tls.requires_client_cert,
            ssl_protocol_min=SSLProtocols.tls12,
        )

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop accepting, let open requests finish (within `grace_s`, default 5 s), then cancel
        what is still running and close."""
        granian, serving = self._granian, self._serving
        if granian is None or serving is None:
            return
        self._granian = self._serving = None
        granian.stop()  # type: ignore[no-untyped-call]  # granian leaves it untyped
        done, _ = await asyncio.wait({serving}, timeout=5.0 if grace_s is None else grace_s)
        if not done:
            for task in list(self.app.in_flight):
                task.cancel()
            done, _ = await asyncio.wait({serving}, timeout=CANCEL_WAIT_S)
        if not done:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
        log.info("rest.stopped")


async def _wait_listening(host: str, port: int, serving: asyncio.Task[None]) -> None:
    """Return once `host:port` accepts connections; raise if the server task ends first."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + START_TIMEOUT_S
    while loop.time() < give_up:
        if serving.done():
            err = serving.exception()
            raise Unavailable(f"the REST server on {host}:{port} did not start: {err}") from err
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise Unavailable(f"the REST server on {host}:{port} did not start within {START_TIMEOUT_S} s")
