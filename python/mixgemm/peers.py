"""Peers that `mixgemm bench` times in the same process: int4 GEMMs a user could install beside
mixgemm, each quantizing the same bf16 weight its own way (asymmetric int4, group scales).

Each factory takes (w [N, K] bf16, x [M, K] bf16, group_size) and returns a zero-argument callable
running the peer's GEMM, or None where the peer is not installed or refuses the problem. Before it
is timed, every peer's output is checked against the dense product x @ w.T: int4 quantization error
is a few percent, so a relative error above QUALITY means the adapter (not the peer) is wrong.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import torch

QUALITY = 0.2


def _checked(fn: Callable[[], torch.Tensor], w: torch.Tensor, x: torch.Tensor) -> Optional[Callable]:
    y = fn().float()
    ref = x.float() @ w.float().t()
    err = float((y - ref).norm() / ref.norm())
    if not err < QUALITY:
        print(f"peer skipped: relative error {err:.3f} against the dense product", flush=True)
        return None
    return fn


def _int4_asymmetric(w: torch.Tensor, group_size: int):
    """(q uint8 [N, K] in 0..15, scale [N, K/g], lo [N, K/g]): w ~ q * scale + lo."""
    n, k = w.shape
    g = w.float().reshape(n, k // group_size, group_size)
    lo, hi = g.amin(-1), g.amax(-1)
    scale = (hi - lo).clamp(min=1e-6) / 15
    q = torch.clamp(torch.round((g - lo.unsqueeze(-1)) / scale.unsqueeze(-1)), 0, 15).to(torch.uint8).reshape(n, k)
    return q, scale, lo


def tinygemm(w: torch.Tensor, x: torch.Tensor, group_size: int) -> Optional[Callable]:
    """torch's int4 tinygemm (torch.ops.aten._weight_int4pack_mm; bf16 only)."""
    if x.dtype != torch.bfloat16:
        return None
    try:
        q, scale, lo = _int4_asymmetric(w, group_size)
        zero = lo + 8 * scale  # tinygemm: w = (q - 8) * scale + zero
        sz = torch.stack([scale.t(), zero.t()], dim=-1).to(torch.bfloat16).contiguous()
        packed_u8 = (q[:, ::2].to(torch.int32) << 4 | q[:, 1::2].to(torch.int32)).to(torch.uint8)
        wp = torch.ops.aten._convert_weight_to_int4pack(packed_u8, 8)
        return _checked(lambda: torch.ops.aten._weight_int4pack_mm(x, wp, group_size, sz), w, x)
    except Exception as e:  # noqa: BLE001  (a peer that does not run here is reported as n/a)
        print(f"tinygemm n/a: {e}", flush=True)
        return None


@functools.cache
def _fbgemm():
    import fbgemm_gpu.experimental.gen_ai  # noqa: F401, PLC0415  (registers torch.ops.fbgemm)
    from fbgemm_gpu.experimental.gen_ai.quantize import quantize_int4_preshuffle  # noqa: PLC0415
    return quantize_int4_preshuffle


def fbgemm(w: torch.Tensor, x: torch.Tensor, group_size: int) -> Optional[Callable]:
    """FBGEMM GenAI's CUTLASS bf16 x int4 kernel with preshuffled weights (bf16i4bf16_shuffled)."""
    if x.dtype != torch.bfloat16:
        return None
    try:
        wq, (scale, zero) = _fbgemm()(w, group_size=group_size, dtype="bf16")
        return _checked(lambda: torch.ops.fbgemm.bf16i4bf16_shuffled(x, wq, scale, zero), w, x)
    except Exception as e:  # noqa: BLE001
        print(f"fbgemm n/a: {e}", flush=True)
        return None


def gemlite(w: torch.Tensor, x: torch.Tensor, group_size: int) -> Optional[Callable]:
    """gemlite's Triton A16W4 kernels (its shipped configs), w = (q - zero) * scale."""
    try:
        from gemlite.helper import A16Wn  # noqa: PLC0415
        q, scale, lo = _int4_asymmetric(w, group_size)
        layer = A16Wn(device=str(x.device), dtype=x.dtype).from_weights(
            q, scale.to(x.dtype), (-lo / scale).to(x.dtype), W_nbits=4, group_size=group_size)
        return _checked(lambda: layer(x), w, x)
    except Exception as e:  # noqa: BLE001
        print(f"gemlite n/a: {e}", flush=True)
        return None


def scaled_mm(w: torch.Tensor, x: torch.Tensor, group_size: int) -> Optional[Callable]:
    """cuBLAS fp8 (e4m3 x e4m3 -> bf16, unit scales) through torch._scaled_mm: the fp8 reference
    point, timed on the same shape (not a quantization of the same weight)."""
    try:
        m = x.shape[0]
        x8 = torch.nn.functional.pad(x, (0, 0, 0, (-m) % 16)).to(torch.float8_e4m3fn)
        w8 = w.to(torch.float8_e4m3fn)
        one = torch.ones((), device=x.device)
        fn = lambda: torch._scaled_mm(x8, w8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)  # noqa: E731
        fn()
        return fn
    except Exception as e:  # noqa: BLE001
        print(f"scaled_mm n/a: {e}", flush=True)
        return None


def scaled_mm_rowwise(w: torch.Tensor, x: torch.Tensor, group_size: int) -> Optional[Callable]:
    """torch._scaled_mm with per-token x per-channel scales (e4m3 x e4m3 -> bf16): the same
    quantization as mixgemm's fp8 x fp8 path, so the same numbers. Activations are quantized once,
    outside the timed call (as mixgemm's gemm column; its second column adds quantize_activations)."""
    try:
        def rowwise(t: torch.Tensor):
            amax = t.float().abs().amax(dim=-1, keepdim=True)
            s = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
            return (t.float() / s).clamp(-448, 448).to(torch.float8_e4m3fn), s
        x8, sx = rowwise(x)
        w8, sw = rowwise(w)
        sw = sw.t().contiguous()
        fn = lambda: torch._scaled_mm(x8, w8.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16)  # noqa: E731
        return _checked(fn, w, x)
    except Exception as e:  # noqa: BLE001
        print(f"scaled_mm_rowwise n/a: {e}", flush=True)
        return None


PEER_FNS: dict[str, Callable] = {"tinygemm": tinygemm, "fbgemm": fbgemm, "gemlite": gemlite, "scaled_mm": scaled_mm,
                                 "scaled_mm_rowwise": scaled_mm_rowwise}
