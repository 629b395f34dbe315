"""Helpers for the hardening tests: the handle of a `maas serve` process and its limits."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

BANNER = re.compile(r"maas serving on http://127\.0\.0\.1:(\d+) \(REST\) and 127\.0\.0\.1:(\d+)")
REQUEST_TIMEOUT_S = 2  # slow bodies are cut off after this
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class LiveServer:
    """A running `maas serve` process."""

    url: str
    grpc_address: str
    pid: int
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def rss_kib(self) -> int:
        """The server's resident memory, from /proc/<pid>/status."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert found, status
        return int(found.group(1))

    def is_alive(self) -> bool:
        return httpx.get(f"{self.url}/v2/health/live", timeout=10).status_code == 200


@contextmanager
def serve_home(home: Path, token: str, env: dict[str, str]) -> Iterator[LiveServer]:
    """`maas serve` over `home` in a subprocess, with `env` added to the environment; stopped
    with SIGTERM at the end (it must still be alive and exit cleanly)."""
    full_env = {**os.environ, "MAAS_HOME": str(home), "MAAS_LOG_LEVEL": "error", **env}
    command = [sys.executable, "-m", "maas", "serve", "--http-port", "0", "--grpc-port", "0"]
    with subprocess.Popen(
        command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = BANNER.search(line)
            assert match, line
            yield LiveServer(
                f"http://127.0.0.1:{match.group(1)}",
                f"127.0.0.1:{match.group(2)}",
                process.pid,
                token,
            )
            assert process.poll() is None, "the server died during the tests"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
