"""The one reference and the one set of tolerances that every correctness check uses."""
from __future__ import annotations

import torch

from .packed import PackedWeight, dequantize

# Relative Frobenius error allowed against the fp32 dequantize-then-matmul reference, per
# activation dtype. Kernels accumulate in fp32; the error comes from rounding y to 16 bits
# (2^-9 for bf16, 2^-12 for fp16) and from summation order, so these are generous but tight enough
# to catch a wrong group, a wrong nibble or a missed k-block (each gives > 1e-1).
TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 5e-3}


def reference(x: torch.Tensor, pw: PackedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """y = x @ dequantize(pw).T (+ bias) in fp32 (fp64 on the CPU), shape [..., N]."""
    dtype = torch.float64 if x.device.type == "cpu" else torch.float32
    y = x.to(dtype) @ dequantize(pw, x.dtype if x.dtype in (torch.bfloat16, torch.float16) else None).to(dtype).t()
    return y + bias.to(dtype) if bias is not None else y


def relative_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.to(torch.float64)
    return float((y.to(torch.float64) - ref).norm() / ref.norm().clamp(min=1e-30))


def assert_close_to_reference(y: torch.Tensor, ref: torch.Tensor, what: str = "") -> None:
    if y.isnan().any() and not ref.isnan().any():
        raise AssertionError(f"{what}: {int(y.isnan().sum())} NaN outputs (unwritten or corrupted)")
    err = relative_error(y, ref)
    tol = TOLERANCE[y.dtype]
    if not err < tol:
        raise AssertionError(f"{what}: relative error {err:.3e} >= {tol:.0e}")
