"""Weight formats, quantization, per-arch packing and the exact dequantization the kernels use.

Operand roles: a Linear weight W is [N, K] (out features x in features). Quantization is
round-to-nearest per group of `group_size` consecutive k (per-channel: one group of K).
Scales (and zeros) are [K / group_size, N], N contiguous, in the activation dtype: that is the
layout the kernels read. Dequantization is ``q * scale`` (s4) or ``q * scale + zero`` (u4, with
``zero = -z * scale`` for integer zero point z), computed as one fused multiply-add and rounded once
to the activation dtype, as the kernels do (see packed.dequantize).

Formats live in FORMATS; a new format gets test coverage by registering itself there.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch

from .generator.spec import DType, weight_layout_tag

def torch_dtype(d: DType | str) -> torch.dtype:
    """The torch dtype of a DType (or its short name, e.g. 'bf16'); the fact lives on DType."""
    d = DType.from_short(d) if isinstance(d, str) else d
    if d.torch_name is None:
        raise ValueError(f"{d.short} has no torch dtype")
    return getattr(torch, d.torch_name)


ACT_DTYPES = {torch_dtype(d): d for d in (DType.BF16, DType.F16)}


@dataclasses.dataclass(frozen=True)
class WeightFormat:
    """A quantized weight format: its storage dtype and how to quantize to it (reference math)."""

    name: str
    weight: DType
    zero_point: bool
    quantize: Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]


def _groups(w: torch.Tensor, group_size: int) -> torch.Tensor:
    n, k = w.shape
    return w.float().reshape(n, k // group_size, group_size)


def _quantize_symmetric(w: torch.Tensor, group_size: int, act: torch.dtype, qmax: int, qmin: int):
    g = _groups(w, group_size)
    amax = g.abs().amax(dim=-1)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax)).to(act)
    q = torch.clamp(torch.round(g / scale.float().unsqueeze(-1)), qmin, qmax)
    return q.reshape(w.shape).to(torch.int8), scale.t().contiguous(), None


def _quantize_asymmetric(w: torch.Tensor, group_size: int, act: torch.dtype, qmax: int):
    g = _groups(w, group_size)
    lo = g.amin(dim=-1).clamp(max=0)
    hi = g.amax(dim=-1).clamp(min=0)
    span = hi - lo
    scale = torch.where(span > 0, span / qmax, torch.ones_like(span)).to(act)
    zp = torch.clamp(torch.round(-lo / scale.float()), 0, qmax)
    q = torch.clamp(torch.round(g / scale.float().unsqueeze(-1)) + zp.unsqueeze(-1), 0, qmax)
    zero = (-zp * scale.float()).to(act)
    return q.reshape(w.shape).to(torch.int8), scale.t().contiguous(), zero.t().contiguous()


FORMATS: dict[str, WeightFormat] = {
    "s4": WeightFormat("s4", DType.S4, False,
                       lambda w, g, act=torch.bfloat16: _quantize_symmetric(w, g, act, DType.S4.qmax, DType.S4.qmin)),
    "u4": WeightFormat("u4", DType.U4, True,
                       lambda w, g, act=torch.bfloat16: _quantize_asymmetric(w, g, act, DType.U4.qmax)),
}


# ---- the sm90 packed layout ----------------------------------------------------------------------
# Within a 16 x 16 atom (n = 8*n_mid + n_lo, k = 8*k_mid + k_lo) value (n, k) sits at
#   32*n_lo + 4*k_lo + 2*k_mid + n_mid,
# and atoms are tiled column-major over (N/16, K/16). This is the layout of
# include/mixgemm/sm90/weight_layout.h; tests/unit/test_layout_atom.py compares the two.

def sm90_permute(q: torch.Tensor) -> torch.Tensor:
    """[N, K] values -> 1-D values in sm90 storage order."""
    n, k = q.shape
    v = q.reshape(n // 16, 2, 8, k // 16, 2, 8)  # n_hi, n_mid, n_lo, k_hi, k_mid, k_lo
    return v.permute(3, 0, 2, 5, 4, 1).reshape(-1)


def sm90_unpermute(flat: torch.Tensor, n: int, k: int) -> torch.Tensor:
    v = flat.reshape(k // 16, n // 16, 8, 8, 2, 2)  # k_hi, n_hi, n_lo, k_lo, k_mid, n_mid
    return v.permute(1, 5, 2, 0, 4, 3).reshape(n, k)


def pack_nibbles(values: torch.Tensor) -> torch.Tensor:
    """1-D 4-bit values (any int dtype) -> uint8, element 2i in the low nibble (CUTLASS order)."""
    v = (values.to(torch.int16) & 0xF).to(torch.uint8)
    return v[0::2] | (v[1::2] << 4)


def unpack_nibbles(packed: torch.Tensor, signed: bool) -> torch.Tensor:
    lo = (packed & 0xF).to(torch.int16)
    hi = (packed >> 4).to(torch.int16)
    v = torch.stack([lo, hi], dim=-1).reshape(-1)
    if signed:
        v = torch.where(v >= 8, v - 16, v)
    return v.to(torch.int8)


@dataclasses.dataclass(frozen=True)
class Layout:
    """A packed-weight layout: its tag (KernelSpec.weight_layout), arch and shape constraints."""

    tag: str
    arch: int
    n_multiple: int
    k_multiple: int
    pack: Callable[[torch.Tensor], torch.Tensor]
    unpack: Callable[[torch.Tensor, int, int, bool], torch.Tensor]


LAYOUTS: dict[int, Layout] = {
    90: Layout(
        tag=weight_layout_tag(90, DType.S4, DType.BF16), arch=90, n_multiple=16, k_multiple=64,
        pack=lambda q: pack_nibbles(sm90_permute(q)),
        unpack=lambda data, n, k, signed: sm90_unpermute(unpack_nibbles(data, signed), n, k),
    ),
}
