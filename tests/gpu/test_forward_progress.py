"""Kernels that split K across CTAs must finish on every grid, including grids far smaller than the
SM count (where split-K/stream-K schedulers are known to hang). Each such kernel runs in a
subprocess with a timeout, so a hang fails this test instead of wedging the GPU session; the
subprocess also checks every result against the reference.

- decode (dec): forced splits at M = 1..64 (up to each kernel's max_m: 8, 16, 32 or 64 tokens) on
  narrow shapes.
- sm90, sm90f8 and sm90w4a8 stream-K (_sk): M = 1..16, 64 and 256 on narrow layers (N = 256..1024, K = 4096..14336: a
  few output tiles for 132 SMs), with CUTLASS's heuristic (split_k = 0, run twice: the fixed-order
  reduction must give bit-identical results) and forced split-K 2..4.
- sm80 stream-K (CUTLASS 2.x's swizzle, with its spin-wait fixup): the same shapes, heuristic,
  data-parallel and split-K 2, 3, 7."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mixgemm
from mixgemm.generator import KernelSpec

pytestmark = pytest.mark.gpu

# Per family token: (n, k, group) shapes, the M values (capped at the kernel's max_m), the split_k values.
CASES = {
    "dec": ([(16, 1024, 128), (48, 4096, -1), (256, 16384, 128), (1024, 4096, 64)], (1, 7, 16, 32, 64),
            (1, 2, 3, 7, 16)),
    "sm90": ([(256, 4096, 128), (512, 14336, 128), (768, 8192, -1), (1024, 4096, 64)], (1, 7, 16, 64, 256),
             (0, 2, 3, 4)),
    "sm90f8": ([(256, 4096, -1), (512, 14336, -1), (768, 8192, -1)], (1, 7, 16, 64, 256), (0, 2, 3, 4)),
    "sm90w4a8": ([(256, 4096, 128), (512, 14336, 128), (768, 8192, -1)], (1, 7, 16, 64, 256), (0, 2, 3, 4)),
    # CUTLASS 2.x stream-K swizzle: its own heuristic (0), data-parallel (1) and split-K 2..7
    "sm80": ([(256, 4096, -1), (512, 14336, -1), (768, 8192, -1)], (1, 7, 16, 64, 256), (0, 1, 2, 3, 7)),
}

DRIVER = r"""
import sys, torch, mixgemm
from mixgemm.generator import KernelSpec
from mixgemm.quant import torch_dtype
from mixgemm.testing import assert_close_to_reference, kernel_inputs, launch_kernel, kernel_weight, poisoned_output, reference
cases = eval(sys.argv[1])
for name in sys.argv[2:]:
    print("start", name, flush=True)
    spec = KernelSpec.parse(name)
    shapes, ms, splits = cases[spec.token]
    runs = 0
    for n, k, g in shapes:
        pw = kernel_weight(spec, n, k, g, seed=n + k)
        for m in sorted({min(m, spec.max_m() or m) for m in ms}):
            x, xs = kernel_inputs(spec, m, k)
            ref = reference(x, pw, x_scale=xs)
            for split in splits:
                what = f"{name} N={n} K={k} M={m} split={split}"
                out = poisoned_output(spec, m, n)
                launch_kernel(name, x, pw, out, split_k=split, x_scale=xs)
                torch.cuda.synchronize()
                assert_close_to_reference(out, ref, what)
                if split == 0:  # the kernel's own choice: a fixed-order reduction repeats bit for bit
                    again = poisoned_output(spec, m, n)
                    launch_kernel(name, x, pw, again, split_k=split, x_scale=xs)
                    torch.cuda.synchronize()
                    assert torch.equal(out, again), what + ": not reproducible run to run"
                runs += 1
    print("finished", name, runs, flush=True)
"""


def splitting() -> list[str]:
    """Built kernels that split K over CTAs (they take split_k > 1)."""
    if not mixgemm._lib.available():
        return []
    return [n for n in mixgemm.kernels() if KernelSpec.parse(n).splits_k]


def expected_runs(spec) -> int:
    shapes, ms, splits = CASES[spec.token]
    return len(shapes) * len({min(m, spec.max_m() or m) for m in ms}) * len(splits)


def test_split_k_kernels_always_finish():
    names = splitting()
    assert names, "no kernel that splits K is built"
    env = {**os.environ, "PYTHONPATH": str(Path(mixgemm.__file__).resolve().parents[1])}
    try:
        r = subprocess.run([sys.executable, "-c", DRIVER, repr(CASES), *names], capture_output=True, text=True,
                           timeout=600, env=env)
    except subprocess.TimeoutExpired as e:
        started = [line for line in (e.stdout or b"").decode().splitlines() if line.startswith("start")]
        pytest.fail(f"no forward progress within 600 s (hang) in {started[-1] if started else 'startup'}")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    for name in names:
        assert f"finished {name} {expected_runs(KernelSpec.parse(name))}" in r.stdout, name

