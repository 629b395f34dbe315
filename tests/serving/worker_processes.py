"""Running `maas serve --workers N` in tests, and telling which worker answered a connection.

Which worker holds a connection is read from the operating system (the process whose socket has
that connection's ports), so the server needs no test-only marker in its answers.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

BANNER = re.compile(
    r"maas serving on http://127\.0\.0\.1:(\d+) \(REST\) and 127\.0\.0\.1:(\d+) \(gRPC\) "
    r"with (\d+) workers"
)
WAIT_S = 60.0  # the longest a test waits for workers to start or follow a change


@dataclass(frozen=True)
class Served:
    """A running supervisor and its shared ports."""

    process: subprocess.Popen[str]
    http_port: int
    grpc_port: int

    def children(self) -> set[int]:
        """The supervisor's child processes (workers and the spare); none once it is gone."""
        with contextlib.suppress(psutil.NoSuchProcess):
            return {child.pid for child in psutil.Process(self.process.pid).children()}
        return set()

    def worker_pids(self) -> set[int]:
        """The supervisor's children that listen on the REST port (a spare does not)."""
        pids = set()
        for pid in self.children():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                child = psutil.Process(pid)
                if any(
                    c.status == psutil.CONN_LISTEN and c.laddr.port == self.http_port
                    for c in child.net_connections("tcp")
                ):
                    pids.add(child.pid)
        return pids

    def wait_for_workers(self, count: int) -> set[int]:
        """The worker pids once `count` workers listen."""
        give_up = time.monotonic() + WAIT_S
        while len(pids := self.worker_pids()) != count:
            assert time.monotonic() < give_up, f"{len(pids)} workers listen, not {count}"
            time.sleep(0.05)
        return pids


@dataclass(frozen=True)
class Answer:
    """One REST answer and the worker process that gave it."""

    pid: int | None
    status: int
    body: dict[str, Any]


@contextlib.contextmanager
def serving(
    home: Path, *flags: str, workers: str = "2", env: dict[str, str] | None = None
) -> Iterator[Served]:
    """Run `maas serve --workers N FLAGS` on free ports until the block ends (then SIGTERM)."""
    full_env = {**os.environ, "MAAS_HOME": str(home), "MAAS_LOG_LEVEL": "warning", **(env or {})}
    command = [sys.executable, "-m", "maas", "serve", "--workers", workers]
    command += ["--http-port", "0", "--grpc-port", "0", *flags]
    log = (home / "serve.log").open("w")
    process = subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = BANNER.search(line)
        assert match, (line, (home / "serve.log").read_text())
        yield Served(process, int(match.group(1)), int(match.group(2)))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(process.pid).children():
                    child.kill()
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()


def owner_of(client_port: int, server_port: int, pids: set[int]) -> int | None:
    """The process among `pids` that holds the server end of this loopback connection."""
    inode = _socket_inode(client_port, server_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        with contextlib.suppress(OSError):  # gone, or an fd closed while we look
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
    return None


def _socket_inode(client_port: int, server_port: int) -> str | None:
    """The inode of the socket with local port `server_port` and remote port `client_port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.split(":")[1], 16) == server_port and (
            int(remote.split(":")[1], 16) == client_port
        ):
            return None if inode == "0" else inode
    return None


def infer_once(
    served: Served, body: dict[str, Any], *, model: str = "iris", token: str | None = None
) -> Answer:
    """POST one inference on a new connection; the answer and which worker gave it."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=30)
    try:
        connection.connect()
        assert connection.sock is not None
        client_port = connection.sock.getsockname()[1]
        connection.request("POST", f"/v2/models/{model}/infer", json.dumps(body), headers)
        pid = None
        give_up = time.monotonic() + 5.0
        while pid is None and time.monotonic() < give_up:  # until a worker has accepted it
            pid = owner_of(client_port, served.http_port, served.children())
        reply = connection.getresponse()
        return Answer(pid, reply.status, json.loads(reply.read()))
    finally:
        connection.close()


def scrape(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`GET /metrics` from whichever worker answers: sample (name, labels) -> value."""
    connection = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def request_count(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], **labels: str
) -> float:
    """The sum of `maas_requests_total` over the samples that carry `labels`."""
    return sum(
        value
        for (name, sample_labels), value in samples.items()
        if name == "maas_requests_total" and set(labels.items()) <= set(sample_labels)
    )
