"""Run-time hardware probes (core/hardware.py): usable cores and native CPU bf16."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from core.hardware import cpu_bf16_supported, cpu_threads

CGROUP = "/sys/fs/cgroup/cpu.max"
CPUINFO = "/proc/cpuinfo"
_read_text = Path.read_text


def _fake_files(monkeypatch, files: dict[str, str | BaseException]) -> list[str]:
    """Serve `files` (text, or an exception to raise) from Path.read_text; other paths read for real."""
    reads: list[str] = []

    def read_text(self, *args, **kwargs):
        key = str(self)
        if key in files:
            reads.append(key)
            value = files[key]
            if isinstance(value, BaseException):
                raise value
            return value
        return _read_text(self, *args, **kwargs)
    monkeypatch.setattr(Path, "read_text", read_text)
    return reads


# --- cpu_threads --------------------------------------------------------------------------------

def test_cpu_threads_is_between_one_and_the_cpu_count():
    assert 1 <= cpu_threads() <= (os.cpu_count() or 1)


@pytest.mark.parametrize("cpu_max, expected", [
    ("max 100000\n", 8),          # no quota: the affinity
    ("200000 100000\n", 2),       # two cores' worth
    ("150000 100000\n", 2),       # a part core rounds up
    ("50000 100000\n", 1),        # under one core is still one
    ("1600000 100000\n", 8),      # a quota above the affinity does not raise it
    ("garbage\n", 8),             # unreadable contents are ignored
])
def test_cpu_threads_caps_the_affinity_by_the_cgroup_quota(monkeypatch, cpu_max, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    reads = _fake_files(monkeypatch, {CGROUP: cpu_max})
    assert cpu_threads() == expected
    assert reads == [CGROUP]


def test_cpu_threads_without_a_cgroup_file_is_the_affinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    _fake_files(monkeypatch, {CGROUP: FileNotFoundError(CGROUP)})
    assert cpu_threads() == 3


def test_cpu_threads_without_affinity_uses_cpu_count(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    _fake_files(monkeypatch, {CGROUP: "400000 100000"})
    assert cpu_threads() == 4
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    _fake_files(monkeypatch, {CGROUP: PermissionError(CGROUP)})
    assert cpu_threads() == 1


# --- cpu_bf16_supported -------------------------------------------------------------------------

def _fake_torch(monkeypatch, **probes):
    """A stand-in `torch` module whose `torch.cpu` has exactly the given probe functions."""
    fake = types.ModuleType("torch")
    fake.cpu = types.SimpleNamespace(**probes)
    monkeypatch.setitem(sys.modules, "torch", fake)


def _raise_runtime():
    raise RuntimeError("probe not compiled in")


def test_bf16_true_from_a_torch_probe_without_reading_cpuinfo(monkeypatch):
    _fake_torch(monkeypatch, _is_avx512_bf16_supported=lambda: False, _is_amx_tile_supported=lambda: True)
    reads = _fake_files(monkeypatch, {CPUINFO: AssertionError("cpuinfo should not be read")})
    assert cpu_bf16_supported() is True
    assert reads == []


@pytest.mark.parametrize("probes", [
    {},  # torch without the probes
    {"_is_avx512_bf16_supported": lambda: False, "_is_amx_tile_supported": lambda: False},
    {"_is_avx512_bf16_supported": _raise_runtime},
], ids=["absent", "false", "raising"])
@pytest.mark.parametrize("cpuinfo, expected", [
    ("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n", True),
    ("processor\t: 0\nflags\t\t: fpu sse2 amx_tile amx_bf16\n", True),
    ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", True),    # Arm
    ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n", False),
    ("processor\t: 0\nflags\t\t: fpu avx512_bf16x\nbugs\t\t: bf16\n", False),  # whole flags of flag lines only
], ids=["avx512_bf16", "amx_bf16", "arm_bf16", "none", "lookalikes"])
def test_bf16_falls_back_to_cpuinfo_flags(monkeypatch, probes, cpuinfo, expected):
    _fake_torch(monkeypatch, **probes)
    reads = _fake_files(monkeypatch, {CPUINFO: cpuinfo})
    assert cpu_bf16_supported() is expected
    assert reads == [CPUINFO]


def test_a_raising_probe_does_not_skip_the_next(monkeypatch):
    _fake_torch(monkeypatch, _is_avx512_bf16_supported=_raise_runtime, _is_amx_tile_supported=lambda: True)
    reads = _fake_files(monkeypatch, {CPUINFO: AssertionError("cpuinfo should not be read")})
    assert cpu_bf16_supported() is True and reads == []


def test_bf16_is_false_when_cpuinfo_cannot_be_read(monkeypatch):
    _fake_torch(monkeypatch)
    _fake_files(monkeypatch, {CPUINFO: OSError("no /proc here")})
    assert cpu_bf16_supported() is False


# --- resolve_device, bf16_supported ------------------------------------------------------------

def _cuda(monkeypatch, available: bool, count: int = 0, bf16: bool = False) -> None:
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "device", lambda d: __import__("contextlib").nullcontext())


@pytest.mark.parametrize("available, count, name, expected", [
    (False, 0, "auto", "cpu"),
    (True, 2, "auto", "cuda"),
    (True, 2, "CUDA:1", "cuda:1"),
    (False, 0, "cpu", "cpu"),
    (True, 1, "cpu", "cpu"),         # asked for the CPU, the CPU it is
])
def test_resolve_device_picks_cuda_only_where_torch_sees_a_gpu(monkeypatch, available, count, name, expected):
    from core.hardware import resolve_device
    _cuda(monkeypatch, available, count)
    assert resolve_device(name) == expected


@pytest.mark.parametrize("available, count, name, message", [
    (False, 0, "cuda", "torch sees no CUDA GPU here"),
    (True, 2, "cuda:2", "has 2 CUDA GPU\\(s\\), numbered 0 to 1"),
    (True, 2, "tpu", "use auto, cpu, cuda or cuda:N"),
    (True, 2, "cuda:x", "use auto, cpu, cuda or cuda:N"),
])
def test_resolve_device_names_what_is_wrong(monkeypatch, available, count, name, message):
    from core.errors import ConfigError
    from core.hardware import resolve_device
    _cuda(monkeypatch, available, count)
    with pytest.raises(ConfigError, match=message):
        resolve_device(name)


def test_bf16_is_asked_of_the_gpu_on_cuda_and_of_the_cpu_otherwise(monkeypatch):
    import core.hardware as hardware
    _cuda(monkeypatch, True, 1, bf16=True)
    monkeypatch.setattr(hardware, "cpu_bf16_supported", lambda: False)
    assert hardware.bf16_supported("cuda:0") is True and hardware.bf16_supported("cpu") is False
    assert hardware.is_cpu("cpu") and not hardware.is_cpu("cuda:0")
