"""What this machine can do, probed at run time (never assumed): native bf16 on the CPU, usable cores."""

from __future__ import annotations

import math
import os
from pathlib import Path


def cpu_bf16_supported() -> bool:
    """Whether this CPU computes bf16 natively: x86 AVX512-BF16 or AMX-BF16, or Arm's BF16 extension.

    (Without it torch still runs bf16, emulated, and slower than fp32.)
    """
    import torch
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    for probe in probes:  # one probe failing does not skip the other
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:
            pass
    try:
        flags = {flag for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith(("flags", "Features")) for flag in line.split(":", 1)[-1].split()}
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def cpu_threads() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)
