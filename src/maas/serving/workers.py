"""`maas serve --workers N`: N server processes answering on the same REST and gRPC ports.

The supervisor (the `maas serve` process itself) checks once that the ports are free, turns port 0
into real ports and keeps them bound (without listening) so nothing else takes them, then starts
each worker as a fresh `python -m maas serve --worker` process and tells it what to serve in one
JSON line on its stdin. Each worker loads its own onnxruntime sessions and batchers, polls the
registry itself (versions, aliases, routes, keys) and binds the shared ports with SO_REUSEPORT, so
the kernel spreads connections over the workers. Per-key rate limits are shared through Redis when
`MAAS_REDIS_URL` is set; without it each worker counts on its own.

A worker that dies is replaced at once (only the requests in flight on it fail). SIGTERM or
SIGINT is forwarded to every worker; each drains within the grace period and the supervisor
exits once all have. Metrics go to files in a folder of the supervisor's
(`PROMETHEUS_MULTIPROC_DIR` of the workers), so `/metrics` on any worker adds up all of them.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from maas.config import child_environment
from maas.errors import InvalidInput, Unavailable

if TYPE_CHECKING:
    from maas.config import Settings

log = logging.getLogger(__name__)

STATUS_PREFIX = "maas-worker-status "  # starts each line a worker tells the supervisor
MAX_FAILED_STARTS = 3  # a worker that dies this often in a row before serving stops the server
RESTART_DELAY_S = 0.5  # wait before starting a worker again after a failed start (times failures)
EXIT_MARGIN_S = 10.0  # after the grace period, how long workers get to exit before SIGKILL
SIGNALS = (signal.SIGINT, signal.SIGTERM)
PRELOADED_MODULES = (  # what a spare imports before it is needed
    "maas.serving.server",
    "maas.serving.grpc.server",
    "maas.serving.manager",
    "maas.registry.store",
)

Scalar = str | int | float | bool


class WorkerSpec(BaseModel):
    """Supervisor -> worker: what to serve, as one JSON line on the worker's stdin.

    `serve` and `security` are the settings overrides the command line gave (with the ports
    resolved), so every worker builds the same `Settings` as the supervisor did.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    count: int
    models: list[str] | None
    serve: dict[str, Scalar]
    security: dict[str, Scalar]


class WorkerStatus(BaseModel):
    """Worker -> supervisor, one line on its stdout after `STATUS_PREFIX`: the process has done its
    imports and waits for a spec (`index` None), or it serves as worker `index`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pid: int
    index: int | None = None
    is_serving: bool = False


def resolve_worker_count(workers: int | Literal["auto"]) -> int:
    """`auto` is the number of CPUs this process may run on (its affinity, not the machine's)."""
    if workers != "auto":
        return workers
    if hasattr(os, "sched_getaffinity"):  # Linux; elsewhere every CPU counts
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def hold_ports(host: str, ports: Sequence[int]) -> list[socket.socket]:
    """Check that each port is free (0: pick a free one) and keep it bound, not listening.

    The sockets carry SO_REUSEPORT (set after the check), so the workers can bind the same ports
    while anything else is kept off them. Close them when the workers are gone.

    Raises:
        Unavailable: a port is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held: list[socket.socket] = []
    try:
        for port in ports:
            sock = socket.socket(family, socket.SOCK_STREAM)
            held.append(sock)
            try:
                sock.bind((host, port))
            except OSError as err:
                reason = "the port is in use" if err.errno == errno.EADDRINUSE else err.strerror
                raise Unavailable(f"cannot listen on {host}:{port}: {reason}") from err
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held


@dataclass
class _Worker:
    """One started worker process and what the supervisor watches of it."""

    process: asyncio.subprocess.Process
    ready: asyncio.Future[None]
    index: int | None = None  # None: a spare, not yet told what to serve
    exited: asyncio.Task[int] = field(init=False)
    relay: asyncio.Task[None] = field(init=False)


class Supervisor:
    """Starts `count` workers, replaces those that die, and stops them all on SIGTERM/SIGINT.

    Once all serve, one spare process is kept started (its imports done, waiting for a spec), so
    a worker that dies is replaced by a process that only has to load the models.

    Args:
        spec: what every worker serves (its `index` is set per worker).
        grace_period_s: how long workers get to drain on shutdown (before EXIT_MARGIN_S more).
        metrics_dir: the folder of the workers' metric files.
        command: how to start one worker (it reads a `WorkerSpec` line on stdin).
    """

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        grace_period_s: float,
        metrics_dir: Path,
        command: Sequence[str] = (sys.executable, "-m", "maas", "serve", "--worker"),
    ) -> None:
        self._spec = spec
        self._grace_period_s = grace_period_s
        self._metrics_dir = metrics_dir
        self._command = tuple(command)
        self._env = child_environment(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
        self._workers: dict[int, _Worker] = {}
        self._spare: _Worker | None = None
        self._failed_starts: dict[int, int] = {}
        self._stop = asyncio.Event()
        self._signal = signal.SIGTERM

    async def run(self, on_started: Callable[[], None]) -> int:
        """Serve until a signal (exit code 0 once all drained) or until workers keep failing to
        start (that worker's exit code); `on_started` runs once every worker serves."""
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            failed = await self._start_all()
            if failed is None and not self._stop.is_set():
                on_started()
                log.info("workers.started", extra={"workers": self._spec.count})
                self._spare = await self._spawn()
                failed = await self._watch()
            clean = await self._stop_all()
            if failed is not None:
                return failed
            return 0 if clean else 1
        finally:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
            await self._stop_all()

    def _on_signal(self, sig: signal.Signals) -> None:
        """Forward the signal to every worker (each drains); stop replacing them."""
        log.info("workers.stopping", extra={"signal": sig.name})
        self._signal = sig
        self._stop.set()
        for worker in self._workers.values():
            if worker.process.returncode is None:
                worker.process.send_signal(sig)

    async def _start_all(self) -> int | None:
        """Start every worker and wait until each serves; the exit code of one that died first."""
        for index in range(self._spec.count):
            await self._start(index)
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            for worker in list(self._workers.values()):
                events: set[asyncio.Future[Any]] = {worker.ready, worker.exited, stopping}
                await asyncio.wait(events, return_when=asyncio.FIRST_COMPLETED)
                if stopping.done():
                    return None
                if not worker.ready.done():
                    return worker.exited.result() or 1
        finally:
            stopping.cancel()
        return None

    async def _watch(self) -> int | None:
        """Replace workers that die until a signal comes; an exit code if one keeps failing."""
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                exits = {w.exited for w in self._workers.values()}
                done, _ = await asyncio.wait(
                    {*exits, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if self._stop.is_set():
                    return None
                for worker in [w for w in self._workers.values() if w.exited in done]:
                    failed = await self._replace(worker)
                    if failed is not None:
                        return failed
        finally:
            stopping.cancel()
        return None

    async def _replace(self, worker: _Worker) -> int | None:
        """Put the spare (or a new process) in the place of a worker that died; its exit code
        if that worker keeps dying before it serves."""
        index, code = worker.index or 0, worker.exited.result()
        log.warning(
            "worker.died", extra={"worker": index, "pid": worker.process.pid, "exit_code": code}
        )
        self._forget(worker)
        failures = 0 if worker.ready.done() else self._failed_starts.get(index, 0) + 1
        self._failed_starts[index] = failures
        if failures >= MAX_FAILED_STARTS:
            log.error("worker.keeps_failing", extra={"worker": index, "exit_code": code})
            return code or 1
        await asyncio.sleep(RESTART_DELAY_S * failures)
        if not self._stop.is_set():
            await self._start(index)
            self._spare = await self._spawn()
        return None

    def _forget(self, worker: _Worker) -> None:
        """Drop a dead worker's live gauges from the metric files (its counts stay)."""
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(worker.process.pid, str(self._metrics_dir))  # type: ignore[no-untyped-call]  # prometheus-client leaves it untyped

    async def _spawn(self) -> _Worker:
        """Start a worker process: it imports the server, then waits for its spec on stdin."""
        process = await asyncio.create_subprocess_exec(
            *self._command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self._env,
        )
        if process.stdout is None:
            raise Unavailable("a worker was started without its pipes")
        worker = _Worker(process, asyncio.get_running_loop().create_future())
        worker.exited = asyncio.create_task(process.wait(), name=f"maas-worker-{process.pid}")
        worker.relay = asyncio.create_task(_relay(process.stdout, worker.ready))
        return worker

    async def _start(self, index: int) -> None:
        """Make the spare (or a new process) worker `index`: hand it its spec. Its stdin stays
        open while the supervisor lives."""
        worker, self._spare = self._spare, None
        if worker is None or worker.process.returncode is not None:
            worker = await self._spawn()
        if worker.process.stdin is None:
            raise Unavailable("a worker was started without its pipes")
        spec = self._spec.model_copy(update={"index": index})
        worker.process.stdin.write(spec.model_dump_json().encode() + b"\n")
        worker.index = index
        self._workers[index] = worker
        log.info("worker.started", extra={"worker": index, "pid": worker.process.pid})

    async def _stop_all(self) -> bool:
        """Signal the workers still running and end the spare; wait for them (SIGKILL after the
        grace period and a margin); whether each worker exited 0."""
        if not self._stop.is_set():
            self._stop.set()
            for worker in self._workers.values():
                if worker.process.returncode is None:
                    worker.process.send_signal(self._signal)
        spare, self._spare = self._spare, None
        if spare is not None and spare.process.stdin is not None:
            spare.process.stdin.close()  # end of input: a spare exits
        everyone = [*self._workers.values(), *([spare] if spare is not None else [])]
        exits = {w.exited for w in everyone}
        if exits:
            _, late = await asyncio.wait(exits, timeout=self._grace_period_s + EXIT_MARGIN_S)
            for worker in [w for w in everyone if w.exited in late]:
                log.error("worker.killed", extra={"worker": worker.index})
                worker.process.kill()
            await asyncio.gather(*exits)
        for worker in everyone:
            await worker.relay
            self._forget(worker)
        codes = [w.exited.result() for w in self._workers.values()]
        self._workers.clear()
        return all(code == 0 for code in codes)


async def _relay(stdout: asyncio.StreamReader, ready: asyncio.Future[None]) -> None:
    """Read a worker's stdout: its serving status resolves `ready`, other lines pass through."""
    while line := await stdout.readline():
        text = line.decode(errors="replace")
        if text.startswith(STATUS_PREFIX):
            try:
                status = WorkerStatus.model_validate_json(text[len(STATUS_PREFIX) :])
            except ValueError:
                log.warning("worker.bad_message", extra={"line": text[:200]})
                continue
            if not status.is_serving:
                log.info("worker.imported", extra={"pid": status.pid})
                continue
            log.info("worker.serving", extra={"worker": status.index, "pid": status.pid})
            if not ready.done():
                ready.set_result(None)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()


async def supervise(
    spec: WorkerSpec, settings: Settings, *, on_started: Callable[[int, int], None]
) -> int:
    """Run `maas serve --workers N`: hold the ports, start the workers, serve until a signal.

    `settings.serve` names the host and ports (0: free ones); `on_started(http_port, grpc_port)`
    runs once every worker serves. Returns the process's exit code.

    Raises:
        Unavailable: a port is in use.
    """
    serve = settings.serve
    held = hold_ports(serve.host, (serve.http_port, serve.grpc_port))
    http_port, grpc_port = (int(sock.getsockname()[1]) for sock in held)
    ports = {"http_port": http_port, "grpc_port": grpc_port}
    try:
        with tempfile.TemporaryDirectory(prefix="maas-metrics-") as metrics_dir:
            supervisor = Supervisor(
                spec.model_copy(update={"serve": {**spec.serve, **ports}}),
                grace_period_s=serve.grace_period_s,
                metrics_dir=Path(metrics_dir),
            )
            return await supervisor.run(lambda: on_started(http_port, grpc_port))
    finally:
        for sock in held:
            sock.close()


class _SupervisorWatch(asyncio.Protocol):
    """The worker's end of its stdin: end of file means the supervisor is gone, so stop."""

    def eof_received(self) -> None:
        log.warning("worker.orphaned")
        signal.raise_signal(signal.SIGTERM)


async def serve_as_worker(spec: WorkerSpec, settings: Settings) -> None:
    """Run one worker: serve on the shared ports until SIGTERM/SIGINT or the supervisor's end."""
    from maas.serving.server import serve_until_signalled

    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(_SupervisorWatch, sys.stdin)
    try:
        await serve_until_signalled(
            settings,
            spec.models,
            on_started=lambda _server: _report(
                WorkerStatus(pid=os.getpid(), index=spec.index, is_serving=True)
            ),
            shares_port=True,
        )
    finally:
        transport.close()


def _report(status: WorkerStatus) -> None:
    sys.stdout.write(f"{STATUS_PREFIX}{status.model_dump_json()}\n")
    sys.stdout.flush()


def await_worker_spec() -> WorkerSpec | None:
    """Import the server (most of a worker's start-up), then wait for the spec the supervisor
    writes on stdin; None when stdin ends first (a spare that was not needed).

    Raises:
        InvalidInput: stdin held something else (`--worker` is for `maas serve --workers N`).
    """
    for module in PRELOADED_MODULES:
        importlib.import_module(module)
    _report(WorkerStatus(pid=os.getpid()))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's
    try:
        line = sys.stdin.readline()
    finally:
        signal.signal(signal.SIGINT, previous)
    if not line:
        return None
    try:
        return WorkerSpec.model_validate_json(line)
    except ValueError as err:
        raise InvalidInput(
            "maas serve --worker is started by maas serve --workers N, not by hand"
        ) from err
