"""Real processes: concurrent registrations, and a kill -9 mid-registration, keep it sound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from registry_models import SIGNATURE

from maas.registry import Registry

WORKER = Path(__file__).with_name("register_worker.py")
PER_PROCESS = 20
STARTUP_LIMIT_S = 120  # generous: the machine may be busy; not a timing assertion


def start_worker(
    url: str, artifacts_dir: Path, name: str, count: int, tag: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, str(artifacts_dir), name, str(count), tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_register_concurrently(registry_url: str, artifacts_dir: Path) -> None:
    # Both processes open the fresh database at once (both run the migrations), then race.
    workers = [
        start_worker(registry_url, artifacts_dir, "race", PER_PROCESS, tag) for tag in ("a", "b")
    ]
    outputs = [w.communicate(timeout=STARTUP_LIMIT_S) for w in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    numbers = [int(line) for out, _ in outputs for line in out.split()]
    assert sorted(numbers) == list(range(1, 2 * PER_PROCESS + 1))
    with Registry(registry_url, artifacts_dir) as registry:
        versions = registry.list_versions("race")
        assert [mv.version for mv in versions] == list(range(1, 2 * PER_PROCESS + 1))
        actors = sorted(a.actor or "" for a in registry.audit_log(limit=1000))
        assert actors == ["a"] * PER_PROCESS + ["b"] * PER_PROCESS
        payloads = {registry.read_artifact(mv) for mv in versions}
    expected = {f"{t}-{i}-".encode() * 50_000 for t in ("a", "b") for i in range(PER_PROCESS)}
    assert payloads == expected


@pytest.mark.slow
def test_kill_during_registration_leaves_registry_consistent(
    registry_url: str, artifacts_dir: Path
) -> None:
    worker = start_worker(registry_url, artifacts_dir, "crash", 10_000, "k")
    assert worker.stdout is not None
    seen = [worker.stdout.readline() for _ in range(3)]  # three versions are in for sure
    assert all(line.strip().isdigit() for line in seen), worker.stderr
    os.kill(worker.pid, signal.SIGKILL)
    worker.communicate(timeout=STARTUP_LIMIT_S)  # reaps it and closes the pipes
    assert worker.returncode == -signal.SIGKILL
    with Registry(registry_url, artifacts_dir) as registry:
        versions = registry.list_versions("crash")
        assert len(versions) >= 3
        assert [mv.version for mv in versions] == list(range(1, len(versions) + 1))
        for mv in versions:  # every recorded version has intact bytes and files
            data = registry.read_artifact(mv)
            assert data == f"k-{mv.version - 1}-".encode() * 50_000
            assert registry.read_file(mv, "extra.bin") == data[::-1]
        # The registry still takes writes: no lock or half transaction was left behind.
        after = registry.register("crash", b"after the crash", signature=SIGNATURE)
        assert after.version == len(versions) + 1
