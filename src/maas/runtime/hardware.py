"""`HardwareProfile`: the machine a model is timed and served on (CPU model, core count).

Tuned serving configurations are stored per profile: batch sizes and instance counts measured
on one CPU do not carry over to another.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class HardwareProfile:
    """What timing figures depend on: the CPU model and how many cores the process sees."""

    cpu: str
    cores: int

    @property
    def key(self) -> str:
        """A stable name, e.g. `AMD EPYC 7763 64-Core Processor/2`."""
        return f"{self.cpu}/{self.cores}"


def hardware_profile() -> HardwareProfile:
    """This machine's CPU model name and core count."""
    cpu = platform.processor() or platform.machine()
    if CPUINFO.exists():
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return HardwareProfile(cpu, os.cpu_count() or 1)
