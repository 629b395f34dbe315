"""Helpers for the hardening tests: the handle of a `maas serve` process and its limits."""

from __future__ import annotations

import re
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
