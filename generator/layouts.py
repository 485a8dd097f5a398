"""Packed-weight layout tags: the contract between a kernel family (which layout it reads) and
packing (python/mixgemm/quant.py, which writes it). A layout is independent of the GPU: several
families on several architectures may read the same one.
"""
from __future__ import annotations

W4_MMA16 = "w4_mma16_shuffled"
"""4-bit weights in 16x16 atoms, each lane's 8 values of a 16-bit mma A fragment in one 32-bit word
(value order [0,2,4,6,1,3,5,7]); atoms column-major over (N/16, K/16). Read by the sm90 CUTLASS
family (wgmma RS) and the decode family (mma.sync m16n8k16). See include/mixgemm/sm90/weight_layout.h."""

LEGACY_TAGS = {"sm90_w4_mma16_shuffled": W4_MMA16}
"""Tags written by mixgemm 0.1 (PackedWeight state version 1)."""
