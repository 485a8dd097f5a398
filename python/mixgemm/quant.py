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

from .generator.dtypes import ACT8, ACTIVATIONS, DType
from .generator.layouts import W4_KMAJOR, W4_MMA16, W4_MMA32_UNIFIED, W8_KMAJOR, W8_MMA16


def torch_dtype(d: DType | str) -> torch.dtype:
    """The torch dtype of a DType (or its short name, e.g. 'bf16'); the fact lives on DType."""
    d = DType.from_short(d) if isinstance(d, str) else d
    if d.torch_name is None:
        raise ValueError(f"{d.short} has no torch dtype")
    return getattr(torch, d.torch_name)


ACT_DTYPES = {torch_dtype(d): d for d in ACTIVATIONS}
"""16-bit activation dtypes (weight-only kernels; scales are stored in one of these)."""
ACT8_DTYPES = {torch_dtype(d): d for d in ACT8}
"""8-bit activation dtypes, e4m3 and s8 (quantized per token with fp32 scales, see quantize_activations)."""


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
    signed_only: bool = False  # holds signed values only (its encoding has no room for unsigned ones)

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
register_layout(Layout(
    tag=W4_KMAJOR, bits=4, n_multiple=16, k_multiple=32,
    pack=lambda q: pack_nibbles(q.reshape(-1)),
    unpack=lambda data, n, k, signed: unpack_nibbles(data, signed).reshape(n, k),
))


# w4_mma32_unified (W4A8): within a 16 x 32 atom (n = 8*n_mid + n_lo, k = 16*k_half + 4*k_c + k_lo)
# value (n, k) sits at 64*n_lo + 16*k_c + 8*k_half + 4*n_mid + k_lo (lane 4*n_lo + k_c owns 16
# contiguous values), and atoms are tiled column-major over (N/16, K/32): weight_layout.h's layout
# for e4m3 activations (tests/unit/test_layout_atom.py compares the two).
def mma32_permute(q: torch.Tensor) -> torch.Tensor:
    n, k = q.shape
    v = q.reshape(n // 16, 2, 8, k // 32, 2, 4, 4)  # n_hi, n_mid, n_lo, k_hi, k_half, k_c, k_lo
    return v.permute(3, 0, 2, 5, 4, 1, 6).reshape(-1)


def mma32_unpermute(flat: torch.Tensor, n: int, k: int) -> torch.Tensor:
    v = flat.reshape(k // 32, n // 16, 8, 4, 2, 2, 4)  # k_hi, n_hi, n_lo, k_c, k_half, n_mid, k_lo
    return v.permute(1, 5, 2, 0, 4, 3, 6).reshape(n, k)


def unified_encode(q: torch.Tensor) -> torch.Tensor:
    """s4 values -> CUTLASS's unified nibble codes: q <= 0 in two's complement, q > 0 as 8 - q (the
    lookup-table converter indexes by the low 3 bits and takes the sign from bit 3)."""
    q = q.to(torch.int16)
    return torch.where(q > 0, 8 - q, q & 0xF)


def unified_decode(codes: torch.Tensor) -> torch.Tensor:
    c = codes.to(torch.int16) & 0xF
    return torch.where(c >= 8, c - 16, torch.where(c == 0, c, 8 - c))


register_layout(Layout(
    tag=W4_MMA32_UNIFIED, bits=4, n_multiple=16, k_multiple=32,
    pack=lambda q: pack_nibbles(unified_encode(mma32_permute(q))),
    unpack=lambda data, n, k, signed: mma32_unpermute(unified_decode(unpack_nibbles(data, False)), n, k),
    signed_only=True,
))


# ---- W4A8: two-level weight scales ------------------------------------------------------------------
# A W4A8 weight is dequantized as channel[n] * e4m3(g[grp, n] * q[n, k]): CUTLASS's lookup-table
# conversion turns each 4-bit q into the e4m3 value of its group scale g (an e4m3 number) times q,
# the fp8 wgmma multiplies those by the e4m3 activations, and the fp32 per-channel scale applies in
# the epilogue. Quantization picks, per value, the q whose e4m3(g * q) lies nearest.
TWO_LEVEL_LAYOUTS = frozenset({W4_MMA32_UNIFIED})
"""Layouts whose weights carry e4m3 group scales ([K/group, N]) and fp32 per-channel scales ([N])."""
W4A8_GROUP_SCALE_MAX = 32.0
"""The largest group scale: w / channel spans +-7 * 32 = +-224, so every table entry g * q (|q| <= 8)
stays within e4m3's +-448."""
_Q4 = torch.arange(-8, 8, dtype=torch.float32)


def scale_tables(g: torch.Tensor) -> torch.Tensor:
    """e4m3 group scales [G, N] -> the tables the kernels read, uint8 [G, N, 8]: the e4m3 codes of
    g * -8, ..., g * -2 and -g (CUTLASS's packed_scale_t layout; the positive half is derived in
    the kernel by flipping sign bits)."""
    neg = (g.float().unsqueeze(-1) * _Q4[:8].to(g.device)).to(torch.float8_e4m3fn).view(torch.uint8)
    neg[..., 7] = g.view(torch.uint8) ^ 0x80  # -g: the sign bit flipped, exact
    return neg.contiguous()


def table_values(g: torch.Tensor) -> torch.Tensor:
    """fp32 [..., 16]: what the kernels multiply q = -8..7 by for e4m3 group scales g [...] (entry
    q + 8), as the lookup-table conversion forms them: e4m3(g * q) for q < 0, its negation for q > 0."""
    neg = scale_tables(g).view(torch.float8_e4m3fn).float()  # q = -8..-1
    pos = -neg[..., 1:].flip(-1)                               # q = 1..7: -(entry of -q)
    return torch.cat([neg, torch.zeros_like(neg[..., :1]), pos], dim=-1)


def two_level_scales(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group scales [N, G] (any float dtype) -> (e4m3 group scales [N, G], fp32 channel [N]) with
    g * channel ~= s (g rounded to e4m3; the largest group of each channel gets W4A8_GROUP_SCALE_MAX)."""
    sf = s.float().abs()
    top = sf.amax(dim=1)
    channel = torch.where(top > 0, top / W4A8_GROUP_SCALE_MAX, torch.ones_like(top))
    g = (sf / channel.unsqueeze(1)).to(torch.float8_e4m3fn)
    return g, channel


def quantize_w4a8(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q int16 [N, K], e4m3 group scales [K/group, N], fp32 channel scales [N]) of a float weight
    [N, K]: group scale amax / 7 relative to the channel's, then per value the q in [-8, 7] whose
    table value e4m3(g * q) * channel lies nearest to w."""
    n, k = w.shape
    wf = w.float()
    amax = wf.reshape(n, k // group_size, group_size).abs().amax(dim=-1)
    g, channel = two_level_scales(amax / 7)
    table = table_values(g)                                    # [N, G, 16], non-decreasing in q
    v = (wf / channel.unsqueeze(1)).reshape(n * (k // group_size), group_size)
    flat = table.reshape(-1, 16).contiguous()
    hi = torch.searchsorted(flat, v.contiguous()).clamp(max=15)
    lo = (hi - 1).clamp(min=0)
    pick = torch.where((v - flat.gather(1, lo)).abs() <= (flat.gather(1, hi) - v).abs(), lo, hi)
    q = (pick - 8).reshape(n, k).to(torch.int16)
    return q, g.t().contiguous(), channel


def dequantize_w4a8(q: torch.Tensor, g: torch.Tensor, channel: torch.Tensor, group_size: int) -> torch.Tensor:
    """fp32 [N, K]: channel[n] * e4m3(g * q), what the W4A8 kernels multiply by (the channel scale
    in their fp32 epilogue)."""
    n, k = q.shape
    table = table_values(g.t())                                # [N, G, 16]
    idx = (q.long() + 8).reshape(n, k // group_size, group_size)
    vals = table.gather(2, idx).reshape(n, k)
    return vals * channel.float().unsqueeze(1)
