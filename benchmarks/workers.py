"""Throughput and server CPU per request of `maas serve --workers N`: the MLP over REST JSON.

    python -m benchmarks.workers --workers 1 2 --seconds 10 --connections 16

Each N gets a fresh `maas serve --workers N` on free loopback ports; a light load generator
(asyncio, raw keep-alive sockets, one pre-encoded batch-1 request) keeps `--connections` requests
in flight for `--seconds`. Server CPU is the user + system time of the whole process tree
(supervisor, workers and the spare) over the window, divided by the requests answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from benchmarks.models import mlp
from benchmarks.server import register_models

BANNER = re.compile(r"maas serving on http://127\.0\.0\.1:(\d+) \(REST\)")
WARM_UP_S = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    model = mlp()
    row = np.random.default_rng(0).random(model.row_shape, dtype=np.float32)
    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 784], "data": row.tolist()}
    body = json.dumps({"inputs": [tensor]}).encode()
    with tempfile.TemporaryDirectory(prefix="maas-bench-workers-") as tmp:
        home = Path(tmp)
        register_models(home, [model])
        print(
            "| workers | connections | infer/s | server CPU µs/req | load average before, after |"
        )
        print("| ---: | ---: | ---: | ---: | --- |")
        for count in args.workers:
            before = os.getloadavg()[0]
            rate, cpu_us = _measure(home, count, body, args.seconds, args.connections)
            after = os.getloadavg()[0]
            print(
                f"| {count} | {args.connections} | {rate:,.0f} | {cpu_us:,.0f} | "
                f"{before:.1f}, {after:.1f} |"
            )
    return 0


def _measure(
    home: Path, count: int, body: bytes, seconds: float, connections: int
) -> tuple[float, float]:
    """(answers per second, server CPU µs per answer) of one `maas serve --workers count`."""
    env = {**os.environ, "MAAS_HOME": str(home), "MAAS_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "maas", "serve", "--workers", str(count)]
    command += ["--http-port", "0", "--grpc-port", "0"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            match = BANNER.search(server.stdout.readline())
            if match is None:
                raise RuntimeError("maas serve did not start")
            request = _request(int(match.group(1)), body)
            asyncio.run(_load(int(match.group(1)), request, WARM_UP_S, connections))
            cpu_before = _tree_cpu_s(server.pid)
            answered = asyncio.run(_load(int(match.group(1)), request, seconds, connections))
            cpu_s = _tree_cpu_s(server.pid) - cpu_before
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    return answered / seconds, cpu_s / max(answered, 1) * 1e6


def _request(port: int, body: bytes) -> bytes:
    head = (
        f"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (living ones)."""
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


async def _load(port: int, request: bytes, seconds: float, connections: int) -> int:
    """Keep `connections` requests in flight for `seconds`; how many got 200."""
    end = time.monotonic() + seconds
    counts = await asyncio.gather(
        *(_one_connection(port, request, end) for _ in range(connections))
    )
    return sum(counts)


async def _one_connection(port: int, request: bytes, end: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answered = 0
    try:
        while time.monotonic() < end:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]  # every answer has one
            await reader.readexactly(length)
            answered += head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    return answered


if __name__ == "__main__":
    sys.exit(main())
