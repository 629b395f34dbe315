"""Fetch and run NVIDIA's perf_analyzer (cached, idempotent).

PyPI's `perf-analyzer` wheels need glibc >= 2.38. On an older system (Debian 12 has 2.36) we
download the wheel for the `manylinux_2_38_x86_64` platform and run its binary through the dynamic
loader of Debian 13's `libc6`, with Debian 13's `libstdc++6` and `libgcc-s1` beside it. Those
packages are fetched with apt-get through a private apt configuration and unpacked with
`dpkg-deb -x` under the cache folder: nothing is installed system-wide.
"""

from __future__ import annotations

import csv
import os
import platform
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

PERF_ANALYZER_VERSION = "2.60.0"
WHEEL_PLATFORM = "manylinux_2_38_x86_64"
GLIBC_NEEDED = (2, 38)
NEWER_RUNTIME_SUITE = "trixie"  # Debian 13: glibc 2.41, libstdc++ from GCC 14
RUNTIME_PACKAGES = ("libc6", "libstdc++6", "libgcc-s1")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LIB_DIR = "usr/lib/x86_64-linux-gnu"
SYSTEM_LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu")


@dataclass(frozen=True)
class PerfResult:
    """One perf_analyzer measurement at one concurrency (latencies in milliseconds)."""

    concurrency: int
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    is_stable: bool = True
    server_cpu_us: float | None = None  # server CPU time per answered request, all threads
    server_cpu_share: float | None = None  # server CPU seconds per second over the whole run


def perf_analyzer_command(cache: Path) -> list[str]:
    """The command prefix that runs perf_analyzer on this machine, fetching what it needs once.

    Raises:
        RuntimeError: perf_analyzer or a newer C runtime could not be fetched.
    """
    cache = cache.resolve()
    binary = _fetch_binary(cache)
    if _system_glibc() >= GLIBC_NEEDED:
        return [str(binary)]
    root = _fetch_runtime(cache)
    loader = root / LIB_DIR / "ld-linux-x86-64.so.2"
    library_path = ":".join([str(root / LIB_DIR), *SYSTEM_LIB_DIRS])
    return [str(loader), "--library-path", library_path, str(binary)]


def describe_runner(command: list[str]) -> str:
    """How perf_analyzer was run, for the report."""
    if len(command) == 1:
        return f"perf_analyzer {PERF_ANALYZER_VERSION} (PyPI wheel), run directly"
    return (
        f"perf_analyzer {PERF_ANALYZER_VERSION} (PyPI wheel for {WHEEL_PLATFORM}), run through the "
        f"dynamic loader of Debian {NEWER_RUNTIME_SUITE}'s libc6 with its libstdc++6 and "
        f"libgcc-s1 unpacked beside it (system glibc {'.'.join(map(str, _system_glibc()))})"
    )


def run_perf_analyzer(
    command: list[str],
    args: list[str],
    csv_path: Path,
    *,
    cpu: int | None,
    timeout_s: float,
) -> PerfResult:
    """Run one measurement and read its CSV report.

    Raises:
        RuntimeError: perf_analyzer failed (its output is in the message) or ran over
            `timeout_s`.
    """
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
    full = [*prefix, *command, *args, "-f", str(csv_path)]
    try:
        done = subprocess.run(full, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"perf_analyzer ran over {timeout_s:.0f} s: {' '.join(full)}") from err
    if done.returncode != 0 or not csv_path.exists():
        tail = (done.stdout + done.stderr)[-2000:]
        raise RuntimeError(f"perf_analyzer failed ({done.returncode}): {' '.join(full)}\n{tail}")
    return read_csv(csv_path)


def read_csv(path: Path) -> PerfResult:
    """The first row of a perf_analyzer CSV report (latencies there are in microseconds)."""
    with path.open(newline="") as handle:
        row = next(csv.DictReader(handle))
    return PerfResult(
        concurrency=int(row["Concurrency"]),
        throughput=float(row["Inferences/Second"]),
        p50_ms=float(row["p50 latency"]) / 1000,
        p90_ms=float(row["p90 latency"]) / 1000,
        p99_ms=float(row["p99 latency"]) / 1000,
    )


def _system_glibc() -> tuple[int, ...]:
    name, version = platform.libc_ver()
    if name != "glibc" or not version:
        return (0,)
    return tuple(int(part) for part in version.split("."))


def _fetch_binary(cache: Path) -> Path:
    binary = cache / "perf_analyzer" / "bin" / "perf_analyzer"
    if binary.exists():
        return binary
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable, "-m", "pip", "download", f"perf-analyzer=={PERF_ANALYZER_VERSION}",
            "--only-binary=:all:", "--platform", WHEEL_PLATFORM, "--python-version", "3.11",
            "--no-deps", "--quiet", "-d", str(wheels),
        ]
    )  # fmt: skip
    wheel = next(wheels.glob(f"perf_analyzer-{PERF_ANALYZER_VERSION}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract("perf_analyzer/bin/perf_analyzer", cache)
    binary.chmod(0o755)
    return binary


def _fetch_runtime(cache: Path) -> Path:
    root = cache / NEWER_RUNTIME_SUITE
    if (root / LIB_DIR / "ld-linux-x86-64.so.2").exists():
        return root
    apt = cache / "apt"
    for folder in ("lists/partial", "archives/partial", "parts", "debs"):
        (apt / folder).mkdir(parents=True, exist_ok=True)
    sources = apt / "sources.list"
    sources.write_text(
        f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {NEWER_RUNTIME_SUITE} main\n"
    )
    status = apt / "status"
    status.touch()
    options = [
        f"-oDir::Etc::SourceList={sources}",
        f"-oDir::Etc::SourceParts={apt / 'parts'}",
        f"-oDir::Etc::Preferences={apt / 'preferences'}",
        f"-oDir::Etc::PreferencesParts={apt / 'parts'}",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::State::status={status}",
        f"-oDir::Cache={apt}",
        "-oAPT::Sandbox::User=root",
        "-oAPT::Architecture=amd64",
        "-oAPT::Architectures=amd64",
    ]
    _run(["apt-get", *options, "-qq", "update"])
    _run(["apt-get", *options, "-qq", "download", *RUNTIME_PACKAGES], cwd=apt / "debs")
    staging = cache / f"{NEWER_RUNTIME_SUITE}.partial"
    staging.mkdir(exist_ok=True)
    for deb in sorted((apt / "debs").glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(staging)])
    staging.rename(root)
    return root


def _run(command: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ}
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-2000:]}")
