"""The one reference and the one set of tolerances that every correctness check uses."""
from __future__ import annotations

import torch

from .generator.layouts import PER_CHANNEL_LAYOUTS
from .packed import PackedWeight, dequantize

# Relative Frobenius error allowed against the fp32 dequantize-then-matmul reference, per
# activation dtype. Kernels accumulate in fp32; the error comes from rounding y to 16 bits
# (2^-9 for bf16, 2^-12 for fp16) and from summation order, so these are generous but tight enough
# to catch a wrong group, a wrong nibble or a missed k-block (each gives > 1e-1).
TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 5e-3}


def reference(x: torch.Tensor, pw: PackedWeight, bias: torch.Tensor | None = None,
              x_scale: torch.Tensor | None = None) -> torch.Tensor:
    """y = x @ dequantize(pw).T (+ bias) in fp32 (fp64 on the CPU), shape [..., N]. With 8-bit
    activations x and their per-token x_scale: (x * x_scale) @ dequantize(pw, float32).T, the weight
    unrounded as the kernels' fp32 epilogue applies it; so too for weights whose kernels apply
    per-channel scales in the epilogue (PER_CHANNEL_LAYOUTS)."""
    dtype = torch.float64 if x.device.type == "cpu" else torch.float32
    if x_scale is not None:
        xf = x.to(dtype) * x_scale.to(dtype).reshape(*x.shape[:-1], 1)
        w = dequantize(pw, torch.float32)
    elif pw.layout in PER_CHANNEL_LAYOUTS:
        xf = x.to(dtype)
        w = dequantize(pw, torch.float32)
    else:
        xf = x.to(dtype)
        w = dequantize(pw, x.dtype if x.dtype in (torch.bfloat16, torch.float16) else None)
    y = xf @ w.to(dtype).t()
    return y + bias.to(dtype) if bias is not None else y


def reference_quantize_activations(x: torch.Tensor, dtype: str = "e4m3") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token quantization as mixgemm.quantize_activations states it, in torch ops: (xq, scale)
    bit for bit (IEEE division, round to nearest even; e4m3 saturated at 448, s8 clamped to 127)."""
    xf = x.float()
    amax = xf.abs().amax(dim=-1)
    if dtype == "s8":
        scale = torch.where(amax > 0, amax / torch.full_like(amax, 127.0), torch.ones_like(amax))
        scale = torch.where(amax.isnan(), amax, scale)
        return torch.round(xf / scale.unsqueeze(-1)).nan_to_num(0.0).clamp(-127, 127).to(torch.int8), scale
    # tensor by tensor: torch divides by a Python scalar as a multiply by its reciprocal
    scale = torch.where(amax > 0, amax / torch.full_like(amax, 448.0), torch.ones_like(amax))
    xq = (xf / scale.unsqueeze(-1)).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return xq, scale


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


# ---- inputs a kernel (by its spec) takes: the registry-driven tests build every case through these --------
def kernel_weight(spec, n: int, k: int, group_size: int = 128, seed: int = 0, scale: float = 0.02,
                  pad: bool = False) -> PackedWeight:
    """A fresh random weight [N, K] in the format, layout and scale mode kernel `spec` reads:
    per-channel for kernels that take only per-channel scales, else `group_size`."""
    from .generator.dtypes import PER_CHANNEL, ScaleMode  # noqa: PLC0415
    from .packed import quantize  # noqa: PLC0415
    from .quant import torch_dtype  # noqa: PLC0415
    g = torch.Generator(device="cuda").manual_seed(seed)
    w = torch.randn(n, k, device="cuda", generator=g) * scale
    group = PER_CHANNEL if spec.scale == ScaleMode.CHANNEL else group_size
    return quantize(w, spec.weight.short, group, act_dtype=torch_dtype(spec.act), pad=pad, layout=spec.layout)


def kernel_inputs(spec, m: int, k: int, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x [M, K], x_scale [M] or None) of the activation dtype kernel `spec` takes: random normal
    16-bit values, or those quantized per token (quantize_activations) for 8-bit activations."""
    from .ops import quantize_activations  # noqa: PLC0415
    from .quant import ACT_DTYPES, torch_dtype  # noqa: PLC0415
    act = torch_dtype(spec.act)
    x = torch.randn(m, k, device="cuda", dtype=act if act in ACT_DTYPES else torch.bfloat16, generator=generator)
    if act in ACT_DTYPES:
        return x, None
    return quantize_activations(x, spec.act.short)


def output_dtype(spec) -> torch.dtype:
    from .quant import torch_dtype  # noqa: PLC0415
    return torch_dtype(spec.out)


def poisoned_output(spec, m: int, n: int) -> torch.Tensor:
    """y [M, N] in the kernel's output dtype, filled with NaN: a kernel must write every element."""
    return torch.full((m, n), float("nan"), device="cuda", dtype=output_dtype(spec))


def launch_kernel(name: str, x: torch.Tensor, pw: PackedWeight, out: torch.Tensor, *, split_k: int = 0,
                  bias: torch.Tensor | None = None, x_scale: torch.Tensor | None = None) -> None:
    """Run built kernel `name` (forced, no dispatch) on pw into `out`, with the tensors it reads."""
    import mixgemm  # noqa: PLC0415
    from .ops import launch  # noqa: PLC0415
    data, scales, zeros, w_scales = pw.kernel_tensors(out.dtype)
    launch(mixgemm.kernels().index(name), x, data, scales, zeros, out, pw.group_size, split_k=split_k, bias=bias,
           x_scale=x_scale, w_scales=w_scales)
