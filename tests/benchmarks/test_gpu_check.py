"""benchmarks/gpu_check.py, run small on the CPU: the script a lent GPU machine runs must work before it gets there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_the_gpu_check_runs_its_every_step_on_a_tiny_model_on_the_cpu(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--size",
                           "tiny", "--train-steps", "2", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rows["device"] == "cpu" and rows["equal"] == rows["equal_of"] == 16
    assert set(rows["serving"]) == {"1", "16", "64"} and all(s["tokens_per_s"] > 0 for s in rows["serving"].values())
    assert rows["training"]["steps"] == 2 and rows["training"]["tokens_per_s"] > 0
    assert "concurrent = serial" in done.stdout and "LoRA training" in done.stdout
