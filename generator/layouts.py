"""Packed-weight layout tags: the contract between a kernel family (which layout it reads) and
packing (python/mixgemm/quant.py, which writes it). A layout is independent of the GPU: several
families on several architectures may read the same one.
"""
from __future__ import annotations

W4_MMA16 = "w4_mma16_shuffled"
"""4-bit weights in 16x16 atoms, each lane's 8 values of a 16-bit mma A fragment in one 32-bit word
(value order [0,2,4,6,1,3,5,7]); atoms column-major over (N/16, K/16). Read by the sm90 CUTLASS
family (wgmma RS) and the decode family (mma.sync m16n8k16). See include/mixgemm/sm90/weight_layout.h."""

W8_MMA16 = "w8_mma16_shuffled"
"""8-bit weights in the same 16x16 atoms and lane order as W4_MMA16, each lane's 8 values in two
32-bit words (value order [0,2,1,3] within each word: one mask pulls out an mma register's pair)."""


W8_KMAJOR = "w8_kmajor"
"""8-bit weights as plain [N, K] bytes, K contiguous (a row-major matrix): the wgmma shared-memory
operand of the fp8 x fp8 family, which TMA loads as stored, and the column-major B operand of the
Ampere CUTLASS 2.x family (s8 weights), which loads it with cp.async and reorders in registers."""

W4_KMAJOR = "w4_kmajor"
"""4-bit weights as a plain [N, K] nibble matrix, K contiguous, element 2i in the low nibble of byte
i (CUTLASS's int4b_t order): the column-major B operand of the Ampere integer W4A8 kernels (s4 x s8),
which CUTLASS loads with cp.async and reorders in registers."""

W4_MMA32_UNIFIED = "w4_mma32_unified"
"""4-bit signed weights for 8-bit float activations (W4A8): 16x32 atoms of the fp8 wgmma A fragment,
each lane's 16 values contiguous in fragment order (two 32-bit words); atoms column-major over
(N/16, K/32). Nibbles in CUTLASS's unified encoding for its lookup-table conversion: q <= 0 in two's complement,
q > 0 as 8 - q, so the low 3 bits index the table of g * (i - 8) (which holds -q's entry for q > 0)
and bit 3 alone tells the sign."""


ACT8_FORMATS = {(W8_KMAJOR, "e4m3"): "e4m3", (W4_MMA32_UNIFIED, "s4"): "e4m3", (W4_KMAJOR, "s4"): "s8"}
"""(layout, weight format) -> the 8-bit activation dtype its kernels take, with per-token scales; pairs
not here take 16-bit activations (a static fact, so traced code can test it; tests/unit/test_spec.py
checks it against the families). A layout alone does not say it: w8_kmajor holds e4m3 weights for
fp8 x fp8 and s8 weights for the Ampere family's 16-bit activations."""

PER_CHANNEL_LAYOUTS = frozenset({W8_KMAJOR, W4_KMAJOR})
"""Layouts whose kernels take per-channel weight scales only (scale mode c: applied in the epilogue)."""


def layout_for_bits(bits: int) -> str:
    """The mma16 layout of a weight width (4 or 8 bits)."""
    try:
        return {4: W4_MMA16, 8: W8_MMA16}[bits]
    except KeyError:
        raise ValueError(f"no mma16 layout holds {bits}-bit weights (4 or 8)") from None


LEGACY_TAGS = {"sm90_w4_mma16_shuffled": W4_MMA16}
"""Tags written by mixgemm 0.1 (PackedWeight state version 1)."""
