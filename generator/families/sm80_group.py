"""Family 'sm80g': mixgemm's own group-scaled mixed-input GEMM for every M on mma.sync (sm80+).

The int4 x f16/bf16 GEMM with group scales and zero points that CUTLASS 2.x does not have (its
mixed-input warp MMA reorders a 2:1 width ratio only and applies no group scales), and the same
mainloop for 8-bit integer and float weights. It reads the packed layouts of the sm90 and decode
families (w4_mma16_shuffled, w8_mma16_shuffled), whose 16x16 atoms hold each lane's mma A fragment
in one 32-bit word (two for 8-bit), so a lane's 8 weights are one shared-memory load, converted
with a LOP3 and a packed subtract per register pair and scaled (q * s, or fma(q, s, z) with zero
points) in 16-bit registers before the mma. One PackedWeight serves every M on Ampere: the decode
family for M <= 64, this one for any M. Header: include/mixgemm/sm80/group_gemm.h.

Tiles are features x tokens (64 k per pipeline stage); a warp tile likewise. Data-parallel only:
each CTA reduces all of K in one order (deterministic, independent of M).
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Iterable, Optional

from ..dtypes import ACTIVATIONS, ScaleMode
from ..family import (COST, WEIGHTS, CostModel, KernelSpec, ShapeRule, TYPES_PATTERN, default_tier, register,
                      weight_only_types_reason)
from ..layouts import layout_for_bits
from .sm80 import tiled_estimate_us, tiling_reason

TILE_K = 64                 # k per pipeline stage: 4 weight atoms, 128 bytes of activations per row
TILES_N = (64, 128, 256)
TILES_M = (32, 64, 128, 256)
WARPS_N = (16, 32, 64)      # 1, 2 or 4 weight atoms per warp
WARPS_M = (16, 32, 64, 128)  # 2..16 mma n8 tiles (pairs: one ldmatrix x4 covers 16 tokens)
STAGES = (2, 3, 4, 5)
# (tile n, tile m, warp n, warp m, stages) per default_tier: a prefill tile with 32-feature x 64-token
# warps (each converted weight fragment serves 8 mmas), a 256-feature one for wide layers, and 64-token
# tiles for M = 64..256, where 128-token tiles leave SMs idle. H100 (as sm86, bf16 x s4 g128, 9 shapes,
# M = 64/128/256; benchmarks/results/h100_sm80g_tiles_s13.txt): the 4-warp 64x64 tile was the fastest
# sm80g tile at M = 64 on 5 of 9 shapes and beat the decode family's 64-token kernel on the two widest
# (57344x8192: 271 against 374 us).
DEFAULT = {"4bit": {(128, 128, 32, 64, 4), (128, 64, 32, 32, 4), (256, 128, 64, 64, 3), (64, 64, 32, 32, 4)},
           "8bit": {(128, 128, 32, 64, 3), (128, 64, 32, 32, 4)},
           "e5m2": {(128, 128, 32, 64, 3)}}
SMOKE = "mixgemm_sm80g_bf16xs4_g_bf16_t128x128_w32x64_s4"


@register
@dataclasses.dataclass(frozen=True)
class Sm80GroupSpec(KernelSpec):
    tile: tuple[int, int]   # (features N, tokens M) per CTA
    warp: tuple[int, int]   # (features, tokens) per warp
    stages: int

    token = "sm80g"
    title = "Ampere group-scaled mixed input, every M: mixgemm's own mma.sync mainloop (sm80+)"
    template = "sm80_group.cu.j2"
    _BODY = re.compile(TYPES_PATTERN + r"_t(?P<tn>\d+)x(?P<tm>\d+)_w(?P<wn>\d+)x(?P<wm>\d+)_s(?P<stages>\d+)")

    @property
    def layout(self) -> str:
        return layout_for_bits(self.weight.bits)

    def body(self) -> str:
        return f"{self.types()}_t{self.tile[0]}x{self.tile[1]}_w{self.warp[0]}x{self.warp[1]}_s{self.stages}"

    @classmethod
    def from_body(cls, m: re.Match) -> "Sm80GroupSpec":
        return cls(**cls.type_fields(m), tile=(int(m["tn"]), int(m["tm"])), warp=(int(m["wn"]), int(m["wm"])),
                   stages=int(m["stages"]))

    @classmethod
    def product(cls) -> Iterable["Sm80GroupSpec"]:
        for act, weight, zero, tn, tm, wn, wm, stages in itertools.product(
                ACTIVATIONS, WEIGHTS, (False, True), TILES_N, TILES_M, WARPS_N, WARPS_M, STAGES):
            yield cls(act, weight, ScaleMode.GROUP, zero, act, tile=(tn, tm), warp=(wn, wm), stages=stages)

    @property
    def warps(self) -> tuple[int, int]:
        """Warps along features and tokens."""
        return self.tile[0] // self.warp[0], self.tile[1] // self.warp[1]

    def smem_bytes(self) -> int:
        """As GroupGemm::kSmemBytes (include/mixgemm/sm80/group_gemm.h): the stages, or the epilogue's
        staged output tile where that is larger."""
        tn, tm = self.tile
        stage = (TILE_K // 16) * (tn // 16) * 32 * self.weight.bits + tm * TILE_K * 2 \
            + (TILE_K // 16) * tn * 2 * (2 if self.zero else 1)
        return max(self.stages * stage, tm * (tn + 8) * 2)

    def invalid_reason(self) -> Optional[str]:
        why = weight_only_types_reason(self)
        if why:
            return why
        return tiling_reason(self.tile, self.warp, self.stages, self.smem_bytes(),
                             (TILES_N, TILES_M, WARPS_N, WARPS_M, STAGES), warp_counts=(4, 8))

    def in_default_set(self) -> bool:
        return (*self.tile, *self.warp, self.stages) in DEFAULT[default_tier(self.weight)]

    def is_smoke(self) -> bool:
        return self.name() == SMOKE

    def cuda_archs(self) -> tuple[str, ...]:
        return ("80", "90")  # sm_80 code also runs on sm86/87/89; the H100 needs its own

    def shape_rule(self) -> ShapeRule:
        # whole 16x16 atoms; a scale group spans whole k atoms (the decode family's rule)
        return ShapeRule(n_multiple=16, k_multiple=16, group_multiple=16)

    @property
    def deterministic(self) -> bool:
        return True  # every CTA reduces all of K in one order, whatever M

    def config(self) -> str:
        return f"tile {self.tile[0]}x{self.tile[1]}x{TILE_K} warp {self.warp[0]}x{self.warp[1]} {self.stages} stages"

    def estimate_us(self, m: int, n: int, k: int, group_size: int, sms: int, model: CostModel = COST) -> float:
        scale_bytes = (k // group_size) * self.tile[0] * 2 * (2 if self.zero else 1)
        return tiled_estimate_us(self.tile[0], self.tile[1], m, n, k, self.weight.bits, self.act.bits,
                                 self.smem_bytes(), self.warps[0] * self.warps[1], sms, model,
                                 scale_bytes=scale_bytes)
