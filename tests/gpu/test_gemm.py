"""Every built kernel, forced by name, against an fp32 dequantize-then-matmul reference.

Fresh random data per case; the output is poisoned (NaN) before each launch and must be fully
written. Shapes: the Llama-3 layers of docs/TARGETS.md; M over tile boundaries.
"""
from __future__ import annotations

import functools

import pytest
import torch

import mixgemm
from mixgemm import _lib
from mixgemm.generator import KernelSpec, ScaleMode
from mixgemm.bench import SHAPES
from mixgemm.quant import torch_dtype
from mixgemm.testing import kernel_inputs, launch_kernel, kernel_weight, output_dtype, poisoned_output

pytestmark = pytest.mark.gpu

MS = (1, 13, 64, 257, 4096)
TOL = 1e-2  # relative Frobenius error; fp32 accumulation of 16-bit products lands near 1e-3


def built() -> list[str]:
    return [name for name, _ in _lib.built_kernels()] if _lib.available() else []


def ms_for(spec, ms) -> list[int]:
    """The M values of `ms` a kernel serves, plus its largest."""
    limit = spec.max_m()
    return list(ms) if limit is None else sorted({m for m in ms if m <= limit} | {limit})


@functools.lru_cache(maxsize=4)
def packed_and_reference(n: int, k: int, weight: str, act: str, group_size: int, seed: int = 0):
    """A PackedWeight and its dequantized weight in fp32 (the reference operand)."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    w = torch.randn(n, k, device="cuda", generator=g, dtype=torch.float32) * 0.02
    pw = mixgemm.quantize(w, weight, group_size, act_dtype=torch_dtype(act))
    return pw, mixgemm.dequantize(pw).float()


def packed(n: int, k: int, weight: str, act: str, group_size: int, seed: int = 0) -> mixgemm.PackedWeight:
    return packed_and_reference(n, k, weight, act, group_size, seed)[0]


@functools.lru_cache(maxsize=4)
def kernel_weight_and_reference(spec, n: int, k: int, group_size: int, seed: int = 0):
    """kernel_weight and what the kernel multiplies by in fp32 (dequantize at its activation dtype;
    unrounded where the scales apply in the fp32 epilogue: 8-bit activations, and the per-channel
    scale mode of the Ampere family)."""
    pw = kernel_weight(spec, n, k, group_size, seed)
    act = torch_dtype(spec.act)
    epilogue = act not in (torch.bfloat16, torch.float16) or spec.scale == ScaleMode.CHANNEL
    return pw, mixgemm.dequantize(pw, torch.float32 if epilogue else act).float()


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return ((y.float() - ref).norm() / ref.norm()).item()


def effective_x(x: torch.Tensor, x_scale) -> torch.Tensor:
    """x as the kernel multiplies it, in fp32 (8-bit activations times their per-token scales)."""
    return x.float() if x_scale is None else x.float() * x_scale.unsqueeze(-1)


def check_kernel(name: str, n: int, k: int, m: int, group_size: int, split_k: int = 0) -> None:
    spec = KernelSpec.parse(name)
    pw, w_ref = kernel_weight_and_reference(spec, n, k, group_size)
    x, xs = kernel_inputs(spec, m, k)
    out = poisoned_output(spec, m, n)
    launch_kernel(name, x, pw, out, split_k=split_k, x_scale=xs)
    torch.cuda.synchronize()
    assert not out.isnan().any(), f"{name}: {int(out.isnan().sum())} outputs not written at M={m} N={n} K={k}"
    ref = effective_x(x, xs) @ w_ref.t()
    err = rel_err(out, ref)
    assert err < TOL, f"{name}: relative error {err:.2e} at M={m} N={n} K={k} group={group_size}"


@pytest.mark.parametrize("name", built())  # varies fastest: one weight serves every kernel of a format
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_kernel_on_llama_shapes(name, shape):
    n, k = SHAPES[shape]
    for m in ms_for(KernelSpec.parse(name), MS):
        check_kernel(name, n, k, m, 128)


@pytest.mark.parametrize("name", built())
def test_every_kernel_fuses_bias(name):
    """bias [N] added in the kernel: against the fp32 reference plus bias, at the kernel's smallest
    and largest M here, with a bias large against the product so a missing or misplaced add fails."""
    spec = KernelSpec.parse(name)
    n, k = 2048, 1024
    pw, w_ref = kernel_weight_and_reference(spec, n, k, 128, seed=4)
    bias = torch.randn(n, device="cuda", dtype=output_dtype(spec)) * 4
    for m in ms_for(spec, (1, 64, 257)):
        x, xs = kernel_inputs(spec, m, k)
        out = poisoned_output(spec, m, n)
        launch_kernel(name, x, pw, out, bias=bias, x_scale=xs)
        torch.cuda.synchronize()
        ref = effective_x(x, xs) @ w_ref.t() + bias.float()
        err = rel_err(out, ref)
        assert err < TOL, f"{name}: relative error {err:.2e} with bias at M={m}"


@pytest.mark.parametrize("group_size", [64, -1])
@pytest.mark.parametrize("name", built())
def test_every_kernel_other_group_sizes(name, group_size):
    n, k = SHAPES["l3-8b.qkv"]
    spec = KernelSpec.parse(name)
    group = k if group_size == -1 else group_size
    if spec.shape_rejection(n, k, group) is not None:  # W4A8 groups are whole k tiles of 128: take 256
        group = 2 * spec.shape_rule().group_multiple
    for m in ms_for(spec, (1, 257)):
        check_kernel(name, n, k, m, group)


@pytest.mark.parametrize("act", ["bf16", "f16"])
@pytest.mark.parametrize("weight", sorted(mixgemm.FORMATS))
def test_dispatched_gemm_api(weight, act):
    n, k = 6144, 4096
    pw = packed(n, k, weight, act, 128, seed=1)
    bias = torch.randn(n, device="cuda", dtype=torch_dtype(act))
    for m in MS:
        x = torch.randn(m, k, device="cuda", dtype=torch_dtype(act))
        y = mixgemm.gemm(x, pw, bias=bias)
        ref = x.float() @ mixgemm.dequantize(pw).float().t() + bias.float()
        assert y.shape == (m, n) and y.dtype == x.dtype
        assert rel_err(y, ref) < TOL
        assert mixgemm.explain(x, pw).choice is not None


@pytest.mark.parametrize("weight", sorted(mixgemm.FORMATS))
def test_no_scale_weights(weight):
    """group_size=NO_SCALE (convert only): every M, through dispatch, against x @ dequantize(pw)."""
    f = mixgemm.FORMATS[weight]
    gen = torch.Generator(device="cuda").manual_seed(3)
    n, k = 1024, 2048
    if isinstance(f, mixgemm.quant.FloatWeightFormat):
        w = (torch.randn(n, k, device="cuda", generator=gen) * 0.05).to(f.torch_dtype).float()
    else:
        w = torch.randint(f.qmin, f.qmax + 1, (n, k), device="cuda", generator=gen).float()
    pw = mixgemm.quantize(w, weight, mixgemm.NO_SCALE, act_dtype=torch.bfloat16)
    assert torch.equal(mixgemm.dequantize(pw).float(), w.to(torch.bfloat16).float())
    scale = 1.0 if isinstance(f, mixgemm.quant.FloatWeightFormat) else 0.01  # keep |y| in range
    for m in MS:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen) * scale
        y = mixgemm.gemm(x, pw)
        assert rel_err(y, x.float() @ mixgemm.dequantize(pw).float().t()) < TOL


def test_batched_input_and_views():
    pw = packed(6144, 4096, "s4", "bf16", 128, seed=2)
    x = torch.randn(3, 5, 4096, device="cuda", dtype=torch.bfloat16)
    y = mixgemm.gemm(x, pw)
    ref = (x.reshape(-1, 4096).float() @ mixgemm.dequantize(pw).float().t()).reshape(3, 5, 6144)
    assert y.shape == (3, 5, 6144) and rel_err(y, ref) < TOL
    big = torch.randn(9, 4096 + 8, device="cuda", dtype=torch.bfloat16)
    view = big[:, 8:]  # non-contiguous rows: copied before the launch
    assert rel_err(mixgemm.gemm(view, pw), view.float() @ mixgemm.dequantize(pw).float().t()) < TOL
    flat = torch.randn(4096 * 4 + 1, device="cuda", dtype=torch.bfloat16)
    offset = flat[1:].view(4, 4096)  # contiguous but 2-byte aligned: copied before the launch
    assert rel_err(mixgemm.gemm(offset, pw), offset.float() @ mixgemm.dequantize(pw).float().t()) < TOL


def test_empty_input_returns_empty():
    pw = packed(6144, 4096, "s4", "bf16", 128, seed=2)
    y = mixgemm.gemm(torch.empty(0, 4096, device="cuda", dtype=torch.bfloat16), pw)
    assert y.shape == (0, 6144)


def test_errors_before_launch_on_gpu():
    pw = packed(6144, 4096, "s4", "bf16", 128, seed=2)
    x = torch.randn(2, 4096, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="out_dtype"):
        mixgemm.gemm(x, pw, out_dtype=torch.float32)
    with pytest.raises(ValueError, match="bias"):
        mixgemm.gemm(x, pw, bias=torch.randn(10, device="cuda", dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="not built"):
        mixgemm.gemm(x, pw, kernel="mixgemm_sm90_bf16xs4_g_bf16_t64x16x64_c1x1_pp")
    specs = [KernelSpec.parse(n) for n in mixgemm.kernels()]
    wrong = next(s for s in specs if s.weight.short == "u4")
    with pytest.raises(ValueError, match="does not serve"):
        mixgemm.gemm(x, pw, kernel=wrong.name())
    small = next(s for s in specs if s.max_m() is not None and s.weight.short == "s4" and s.act.short == "bf16")
    with pytest.raises(ValueError, match=f"M={small.max_m() + 1} > {small.max_m()}"):
        mixgemm.gemm(torch.randn(small.max_m() + 1, 4096, device="cuda", dtype=torch.bfloat16), pw, kernel=small.name())
    # the C++ entry refuses what Python would have caught too (defence in depth)
    lib = _lib.load()
    for spec in [s for s in specs if s.act.bits == 16]:  # 8-bit activations: test_fp8.py
        idx = mixgemm.kernels().index(spec.name())
        p = lib.Problem()
        p.x, p.w, p.scales, p.y = x.data_ptr() + 2, pw.data.data_ptr(), pw.scales.data_ptr(), x.data_ptr()
        p.zeros = pw.scales.data_ptr() if spec.zero else 0
        p.m, p.n, p.k, p.group_size = 2, 6144, 4096, 128
        status, msg = lib.check(idx, p)
        assert status != 0 and "aligned" in msg, spec.name()
        p.x, p.group_size = x.data_ptr(), 100
        status, msg = lib.check(idx, p)
        assert status != 0 and "group_size" in msg, spec.name()
        p.group_size = 128
        assert lib.check(idx, p) == (0, ""), spec.name()


def test_runs_on_the_current_stream():
    pw = packed(6144, 4096, "s4", "bf16", 128, seed=2)
    x = torch.randn(64, 4096, device="cuda", dtype=torch.bfloat16)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        y = mixgemm.gemm(x, pw)
    s.synchronize()
    assert rel_err(y, x.float() @ mixgemm.dequantize(pw).float().t()) < TOL


@pytest.mark.parametrize("name", [n for n in built() if n.startswith(("mixgemm_sm90_", "mixgemm_sm90f8_", "mixgemm_sm90w4a8_", "mixgemm_sm80_"))
                                  and n.endswith("_sk")])
def test_stream_k_forced_splits_and_their_limit(name):
    """Stream-K kernels: data-parallel (1), split-K (2, 5) and one k tile per split (K / tile k),
    at M over a token tile; one split more than K has k tiles is refused before any launch."""
    spec = KernelSpec.parse(name)
    n, k = SHAPES["l3-8b.qkv"]
    most = k // spec.tile[2]
    for split in (1, 2, 5, most):
        for m in (17, 256):
            check_kernel(name, n, k, m, 128, split_k=split)
    pw = kernel_weight(spec, n, k, 128)
    x, xs = kernel_inputs(spec, 17, k)
    y = poisoned_output(spec, 17, n)
    p = _lib.load().Problem()
    data, scales, zeros, w_scales = pw.kernel_tensors(y.dtype)
    p.x, p.w, p.scales, p.y = x.data_ptr(), data.data_ptr(), scales.data_ptr(), y.data_ptr()
    p.zeros = zeros.data_ptr() if zeros is not None else 0
    p.w_scales = w_scales.data_ptr() if w_scales is not None else 0
    p.x_scales = xs.data_ptr() if xs is not None else 0
    p.m, p.n, p.k, p.group_size = 17, n, k, pw.group_size
    idx = mixgemm.kernels().index(name)
    p.split_k = most
    assert _lib.load().check(idx, p) == (0, ""), name
    p.split_k = most + 1
    status, msg = _lib.load().check(idx, p)
    assert status != 0 and "split_k" in msg, name
