"""Weight formats and packed layouts: the two registries that packing, dequantization, dispatch
and the tests go through.

Operand roles: a Linear weight W is [N, K] (out features x in features). Quantization is
round-to-nearest per group of `group_size` consecutive k (per-channel: one group of K).
Scales (and zeros) are [K / group_size, N], N contiguous, in a 16-bit activation dtype: that is
the layout the kernels read. Dequantization is ``q * scale`` (symmetric formats) or
``q * scale + zero`` (formats with zero points, ``zero = -z * scale`` for the integer zero point z),
computed as one fused multiply-add and rounded once to the activation dtype, as the kernels do.

A new format gets test coverage by registering in FORMATS (tests parametrize over it); a new
packed layout registers in LAYOUTS with its pack/unpack, and a kernel family names its tag.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch

from .generator.dtypes import ACTIVATIONS, FP8_ACTIVATIONS, DType
from .generator.layouts import W4_MMA16, W8_KMAJOR, W8_MMA16


def torch_dtype(d: DType | str) -> torch.dtype:
    """The torch dtype of a DType (or its short name, e.g. 'bf16'); the fact lives on DType."""
    d = DType.from_short(d) if isinstance(d, str) else d
    if d.torch_name is None:
        raise ValueError(f"{d.short} has no torch dtype")
    return getattr(torch, d.torch_name)


ACT_DTYPES = {torch_dtype(d): d for d in ACTIVATIONS}
"""16-bit activation dtypes (weight-only kernels; scales are stored in one of these)."""
FP8_ACT_DTYPES = {torch_dtype(d): d for d in FP8_ACTIVATIONS}
"""8-bit float activation dtypes (quantized per token, see quantize_activations)."""


def expand_groups(t: torch.Tensor, group_size: int) -> torch.Tensor:
    """[K / group, N] per-group values -> [N, K] in fp32."""
    return t.float().t().repeat_interleave(group_size, dim=1)


@dataclasses.dataclass(frozen=True)
class WeightFormat:
    """A quantized weight format: storage dtype, range, quantization and the reference
    dequantization (the exact weights a kernel multiplies by)."""

    name: str
    dtype: DType
    zero_point: bool

    @property
    def bits(self) -> int:
        return self.dtype.bits

    @property
    def qmin(self) -> int:
        return self.dtype.qmin

    @property
    def qmax(self) -> int:
        return self.dtype.qmax

    def quantize(self, w: torch.Tensor, group_size: int, act: torch.dtype
                 ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Round-to-nearest: (q int16 [N, K], scales [K/group, N], zeros [K/group, N] or None), the
        scales and zeros in `act`."""
        n, k = w.shape
        g = w.float().reshape(n, k // group_size, group_size)
        if self.zero_point:
            lo = g.amin(dim=-1).clamp(max=0)
            hi = g.amax(dim=-1).clamp(min=0)
            span = hi - lo
            scale = torch.where(span > 0, span / (self.qmax - self.qmin), torch.ones_like(span)).to(act)
            zp = torch.clamp(torch.round(-lo / scale.float()), self.qmin, self.qmax)
            # Place values against the zero term as stored (rounded to act: for 8-bit zero points
            # that rounding reaches half a step), so it costs no accuracy.
            zero = self.zero_term(zp, scale)
            q = torch.clamp(torch.round((g - zero.float().unsqueeze(-1)) / scale.float().unsqueeze(-1)),
                            self.qmin, self.qmax)
            zero = zero.t().contiguous()
        else:
            amax = g.abs().amax(dim=-1)
            scale = torch.where(amax > 0, amax / self.qmax, torch.ones_like(amax)).to(act)
            q = torch.clamp(torch.round(g / scale.float().unsqueeze(-1)), self.qmin, self.qmax)
            zero = None
        return q.reshape(n, k).to(torch.int16), scale.t().contiguous(), zero

    @staticmethod
    def zero_term(zp: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """What the kernels add for integer zero points zp: -zp * scale, rounded once to scale's
        (activation) dtype."""
        return (-zp.float() * scale.float()).to(scale.dtype)

    def dequantize(self, q: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor], group_size: int,
                   dtype: torch.dtype) -> torch.Tensor:
        """The reference: q * scale (+ zero) exactly in fp32 (4- and 8-bit integers times 16-bit
        scales are exact there, and so is adding a zero term of the magnitudes a zero point spans),
        rounded once to `dtype`, as the kernels' fused multiply-add does."""
        w = q.float() * expand_groups(scales, group_size)
        if zeros is not None:
            w = w + expand_groups(zeros, group_size)
        return w.to(dtype)


@dataclasses.dataclass(frozen=True)
class FloatWeightFormat(WeightFormat):
    """An 8-bit float weight format (e4m3, e5m2): symmetric, scale = group amax / `target`, values
    rounded to nearest even by torch's cast. Its integer values (what `unpack` returns and layouts
    pack) are the codes: the bytes read as int8."""

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch_dtype(self.dtype)

    @property
    def fmax(self) -> float:
        return float(torch.finfo(self.torch_dtype).max)

    @property
    def target(self) -> float:
        """What a group's largest magnitude maps to: e4m3's largest finite value, 448, for both (e5m2
        reaches 57344, but amax / 57344 is below fp16's normal range for weights under ~3.5, and
        e5m2 keeps 2 mantissa bits at every magnitude, so the headroom would only cost scale bits)."""
        return min(self.fmax, 448.0)

    def codes_to_values(self, q: torch.Tensor) -> torch.Tensor:
        return q.to(torch.int8).view(self.torch_dtype).float()

    def values_to_codes(self, v: torch.Tensor) -> torch.Tensor:
        """A tensor of the format's float8 dtype -> its codes (int16, as layouts pack them)."""
        return v.view(torch.int8).to(torch.int16)

    def quantize(self, w: torch.Tensor, group_size: int, act: torch.dtype
                 ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        n, k = w.shape
        g = w.float().reshape(n, k // group_size, group_size)
        amax = g.abs().amax(dim=-1)
        scale = torch.where(amax > 0, amax / self.target, torch.ones_like(amax)).to(act)
        v = (g / scale.float().unsqueeze(-1)).clamp(-self.fmax, self.fmax).to(self.torch_dtype)
        return self.values_to_codes(v).reshape(n, k), scale.t().contiguous(), None

    def dequantize(self, q: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor], group_size: int,
                   dtype: torch.dtype) -> torch.Tensor:
        """value * scale exactly in fp32 (4 or 3 significant bits times 8 or 11), rounded once."""
        return (self.codes_to_values(q) * expand_groups(scales, group_size)).to(dtype)


FORMATS: dict[str, WeightFormat] = {}


def register_format(fmt: WeightFormat) -> WeightFormat:
    FORMATS[fmt.name] = fmt
    return fmt


register_format(WeightFormat("s4", DType.S4, zero_point=False))
register_format(WeightFormat("u4", DType.U4, zero_point=True))
register_format(WeightFormat("s8", DType.S8, zero_point=False))
register_format(WeightFormat("u8", DType.U8, zero_point=True))
register_format(FloatWeightFormat("e4m3", DType.E4M3, zero_point=False))
register_format(FloatWeightFormat("e5m2", DType.E5M2, zero_point=False))


# ---- packed layouts ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Layout:
    """A packed-weight layout: its tag (what kernel families name), value width, the shape
    multiples of its atom, and pack/unpack between integer values [N, K] (int16) and the stored bytes."""

    tag: str
    bits: int
    n_multiple: int
    k_multiple: int
    pack: Callable[[torch.Tensor], torch.Tensor]
    unpack: Callable[[torch.Tensor, int, int, bool], torch.Tensor]

    def nbytes(self, n: int, k: int) -> int:
        return n * k * self.bits // 8


# w4_mma16_shuffled: within a 16 x 16 atom (n = 8*n_mid + n_lo, k = 8*k_mid + k_lo) value (n, k) sits at
#   32*n_lo + 4*k_lo + 2*k_mid + n_mid,
# and atoms are tiled column-major over (N/16, K/16). This is include/mixgemm/sm90/weight_layout.h's
# layout; tests/unit/test_layout_atom.py compares the two.
def mma16_permute(q: torch.Tensor) -> torch.Tensor:
    """[N, K] values -> 1-D values in storage order."""
    n, k = q.shape
    v = q.reshape(n // 16, 2, 8, k // 16, 2, 8)  # n_hi, n_mid, n_lo, k_hi, k_mid, k_lo
    return v.permute(3, 0, 2, 5, 4, 1).reshape(-1)


def mma16_unpermute(flat: torch.Tensor, n: int, k: int) -> torch.Tensor:
    v = flat.reshape(k // 16, n // 16, 8, 8, 2, 2)  # k_hi, n_hi, n_lo, k_lo, k_mid, n_mid
    return v.permute(1, 5, 2, 0, 4, 3).reshape(n, k)


# w8_mma16_shuffled: the same atoms and lanes; lane (n_lo, k_lo // 2)'s 8 bytes hold its values in the
# order (k_mid, k_lo % 2, n_mid), i.e. value (n, k) sits at 32*n_lo + 8*(k_lo // 2) + 4*k_mid +
# 2*(k_lo % 2) + n_mid: each 32-bit word is [a.lo, a'.lo, a.hi, a'.hi] for the mma registers
# a = (row g, k pair) and a' = (row g + 8, same k pair). This is weight_layout.h's 8-bit layout.
def mma16_permute8(q: torch.Tensor) -> torch.Tensor:
    n, k = q.shape
    v = q.reshape(n // 16, 2, 8, k // 16, 2, 4, 2)  # n_hi, n_mid, n_lo, k_hi, k_mid, k_c, k_j
    return v.permute(3, 0, 2, 5, 4, 6, 1).reshape(-1)


def mma16_unpermute8(flat: torch.Tensor, n: int, k: int) -> torch.Tensor:
    v = flat.reshape(k // 16, n // 16, 8, 4, 2, 2, 2)  # k_hi, n_hi, n_lo, k_c, k_mid, k_j, n_mid
    return v.permute(1, 6, 2, 0, 4, 3, 5).reshape(n, k)


def pack_bytes(values: torch.Tensor) -> torch.Tensor:
    """1-D 8-bit values (signed or unsigned, any int dtype) -> their uint8 bytes."""
    return (values.to(torch.int16) & 0xFF).to(torch.uint8)


def unpack_bytes(packed: torch.Tensor, signed: bool) -> torch.Tensor:
    v = packed.to(torch.int16)
    return torch.where(v >= 128, v - 256, v) if signed else v


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
    return v


LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    LAYOUTS[layout.tag] = layout
    return layout


register_layout(Layout(
    tag=W4_MMA16, bits=4, n_multiple=16, k_multiple=16,
    pack=lambda q: pack_nibbles(mma16_permute(q)),
    unpack=lambda data, n, k, signed: mma16_unpermute(unpack_nibbles(data, signed), n, k),
))
register_layout(Layout(
    tag=W8_MMA16, bits=8, n_multiple=16, k_multiple=16,
    pack=lambda q: pack_bytes(mma16_permute8(q)),
    unpack=lambda data, n, k, signed: mma16_unpermute8(unpack_bytes(data, signed), n, k),
))
register_layout(Layout(
    tag=W8_KMAJOR, bits=8, n_multiple=16, k_multiple=16,
    pack=lambda q: pack_bytes(q.reshape(-1)),
    unpack=lambda data, n, k, signed: unpack_bytes(data, signed).reshape(n, k),
))
