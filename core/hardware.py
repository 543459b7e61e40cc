"""What this machine can do, probed at run time (never assumed): native bf16, usable cores, the device to run on."""

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


#: what `--device` accepts: `auto` (CUDA when torch sees a GPU, else the CPU), `cpu`, `cuda` or `cuda:N`
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> str:
    """The torch device a `--device` value names on this machine: `cpu`, `cuda` or `cuda:N`.

    `auto` is CUDA when torch sees a GPU and the CPU otherwise; asking for CUDA where torch
    sees none (or for a GPU index past the last) is a :class:`core.errors.ConfigError`.
    """
    from core.errors import ConfigError

    name = (name or "auto").strip().lower()
    if name == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if name == "auto":
        return "cuda" if available else "cpu"
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ConfigError(f"--device {name!r}: use auto, cpu, cuda or cuda:N")
    if not available:
        raise ConfigError(f"--device {name}: torch sees no CUDA GPU here (torch {torch.__version__}, "
                          f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu or auto")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise ConfigError(f"--device {name}: this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}")
    return name


def is_cpu(device: str) -> bool:
    """Whether a resolved device is the CPU (where thread counts, heap trimming and AVX probes apply)."""
    return device.split(":", 1)[0] == "cpu"


def bf16_supported(device: str) -> bool:
    """Whether `device` computes bf16 natively: the CPU's instructions, or the GPU's (Ampere and later)."""
    if is_cpu(device):
        return cpu_bf16_supported()
    import torch

    with torch.cuda.device(device):
        return bool(torch.cuda.is_bf16_supported())


def gpu_count() -> int:
    """CUDA GPUs torch sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
