"""Kernels that split K across CTAs must finish on every grid, including grids far smaller than the
SM count (where split-K/stream-K schedulers are known to hang). Each such kernel runs forced splits
at M = 1..16 on narrow shapes in a subprocess with a timeout: a hang fails this test instead of
wedging the GPU session; the subprocess also checks every result against the reference."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mixgemm
from mixgemm.generator import KernelSpec

pytestmark = pytest.mark.gpu

DRIVER = r"""
import sys, torch, mixgemm
from mixgemm.generator import KernelSpec
from mixgemm.ops import launch
from mixgemm.quant import torch_dtype
from mixgemm.testing import assert_close_to_reference, reference
for name in sys.argv[1:]:
    print("start", name, flush=True)
    spec = KernelSpec.parse(name)
    act = torch_dtype(spec.act)
    index = mixgemm.kernels().index(name)
    runs = 0
    for n, k, g in [(16, 1024, 128), (48, 4096, -1), (256, 16384, 128), (1024, 4096, 64)]:
        pw = mixgemm.quantize(torch.randn(n, k, device="cuda") * 0.02, spec.weight.short, g, act_dtype=act)
        for m in sorted({1, 7, spec.max_m()}):
            x = torch.randn(m, k, device="cuda", dtype=act)
            for split in (1, 2, 3, 7, 16):
                out = torch.full((m, n), float("nan"), device="cuda", dtype=act)
                launch(index, x, pw.data, pw.scales, pw.zeros, out, pw.group_size, split_k=split)
                torch.cuda.synchronize()
                assert_close_to_reference(out, reference(x, pw), f"{name} N={n} K={k} M={m} split={split}")
                runs += 1
    print("finished", name, runs, flush=True)
"""


def splitting() -> list[str]:
    """Built kernels of families that split K over CTAs (they take split_k > 1)."""
    if not mixgemm._lib.available():
        return []
    return [n for n in mixgemm.kernels() if KernelSpec.parse(n).token == "dec"]


def test_split_k_kernels_always_finish():
    names = splitting()
    assert names, "no kernel that splits K is built"
    env = {**os.environ, "PYTHONPATH": str(Path(mixgemm.__file__).resolve().parents[1])}
    try:
        r = subprocess.run([sys.executable, "-c", DRIVER, *names], capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired as e:
        started = [line for line in (e.stdout or b"").decode().splitlines() if line.startswith("start")]
        pytest.fail(f"no forward progress within 300 s (hang) in {started[-1] if started else 'startup'}")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    for name in names:
        assert f"finished {name} 60" in r.stdout, name
