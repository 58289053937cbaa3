"""The machine a benchmark script ran on: CPU model, core count and load (figures of a shared machine go with them).

Imported by the scripts beside it (``python scripts/<name>.py`` puts this folder on the path).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (``lscpu``'s "Model name") and the CPUs this process sees, else the architecture."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} CPUs"


def load() -> str:
    """The load averages over 1, 5 and 15 minutes (``/proc/loadavg``), or ``"n/a"``."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"
