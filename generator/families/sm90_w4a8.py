"""Family 'sm90w4a8': CUTLASS 3.x TMA warp-specialized W4A8 GEMM on Hopper (sm90a).

s4 weights x e4m3 activations (quantized per token: an [M] fp32 scale per call). The mixed-input
mainloop converts the weights with CUTLASS's lookup table: one prmt per 4 values yields e4m3
values already multiplied by their group's e4m3 scale, e4m3(g * q), which fp8 wgmma multiplies by
the activations (fp32 accumulation, no conversion of the activations). The per-token scale, an
fp32 per-channel weight scale and the bias apply in the epilogue:
``y = w_scale[n] * (x_scale[m] * sum_k xq[m, k] * e4m3(g * q)[n, k]) + bias[n]``, rounded once to
bf16 or fp16. The weight layout is w4_mma32_unified. Header: include/mixgemm/sm90/w4a8_gemm.h.

Tiles, clusters, schedules, the stream-K variant, the name grammar, the wave model and the
determinism statement are the sm90 family's (Sm90MixedSpec); the tensor-core rate is fp8's, less
the conversion's share of issue slots.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Iterable, Optional

from ..dtypes import DType, FP8_ACTIVATIONS, ScaleMode
from ..family import CostModel, ShapeRule, register
from ..layouts import W4_MMA32_UNIFIED
from .sm90_fp8 import FP8_WGMMA_SPEEDUP, OUTPUTS
from .sm90_mixed import CLUSTERS, TILES_M, TILES_N, Decomposition, Schedule, Sm90MixedSpec

TILE_K = 128  # 128 bytes of e4m3 activations per stage row
# The default build: the tiles first-use timing picked on the six Llama-3 layers at M = 1-4096 (H100,
# 2026-11-23, 21 tiles built: benchmarks/results/h100_w4a8_s11.md) for bf16 output; fp16 output
# one tile per regime (data-parallel decode / medium / prefill, stream-K small batch).
DEFAULT_TILES = {((128, 16), (1, 1)), ((128, 32), (1, 1)), ((64, 64), (1, 1)), ((128, 128), (1, 1)),
                 ((128, 256), (1, 1)), ((128, 256), (2, 1))}
DEFAULT_SK_TILES = {((128, 16), (1, 1)), ((128, 32), (1, 1)), ((128, 64), (1, 1)), ((128, 128), (1, 1)),
                    ((128, 256), (1, 1)), ((128, 256), (2, 1))}
DEFAULT_F16_TILES = {((128, 16), (1, 1)), ((128, 128), (1, 1)), ((128, 256), (1, 1))}
DEFAULT_F16_SK_TILES = {((128, 32), (1, 1)), ((128, 64), (1, 1)), ((128, 128), (1, 1))}
SMOKE = "mixgemm_sm90w4a8_e4m3xs4_g_bf16_t128x128x128_c1x1_coop"


@register
@dataclasses.dataclass(frozen=True)
class Sm90W4A8Spec(Sm90MixedSpec):
    token = "sm90w4a8"
    title = "Hopper CUTLASS 3.x TMA warp-specialized W4A8 (s4 x e4m3, lookup-table conversion)"
    template = "sm90_w4a8.cu.j2"

    @property
    def layout(self) -> str:
        return W4_MMA32_UNIFIED

    @classmethod
    def product(cls) -> Iterable["Sm90W4A8Spec"]:
        for act, out, tn, tm, cluster, schedule, decomp in itertools.product(
                FP8_ACTIVATIONS, OUTPUTS, TILES_N, TILES_M, CLUSTERS, tuple(Schedule), tuple(Decomposition)):
            yield cls(act, DType.S4, ScaleMode.GROUP, False, out, tile=(tn, tm, TILE_K), cluster=cluster,
                      schedule=schedule, decomp=decomp)

    def smem_stage_bytes(self) -> int:
        tn, tm, tk = self.tile
        return tn * tk // 2 + tm * tk + tn * 8  # weights, activations, one 8-byte scale table per row

    def invalid_reason(self) -> Optional[str]:
        if self.act not in FP8_ACTIVATIONS or self.weight != DType.S4:
            return f"{self.act.short} x {self.weight.short}: this family multiplies e4m3 activations by s4 weights"
        if self.scale != ScaleMode.GROUP or self.zero:
            return "group scales (mode g; per-channel is one group of K), no zero points"
        if self.out not in OUTPUTS:
            return f"output {self.out.short} is not supported ({', '.join(o.short for o in OUTPUTS)})"
        tn, tm, tk = self.tile
        if tk != TILE_K:
            return f"tile k must be {TILE_K} (128 bytes of e4m3)"
        if tn not in TILES_N or tm not in TILES_M:
            return f"tile {tn}x{tm} not in {TILES_N} x {TILES_M}"
        return self.schedule_reason()

    def in_default_set(self) -> bool:
        sk = self.decomp == Decomposition.STREAM_K
        if self.out == DType.F16:
            tiles = DEFAULT_F16_SK_TILES if sk else DEFAULT_F16_TILES
        else:
            tiles = DEFAULT_SK_TILES if sk else DEFAULT_TILES
        return (self.tile[:2], self.cluster) in tiles

    def is_smoke(self) -> bool:
        return self.name() == SMOKE

    def shape_rule(self) -> ShapeRule:
        # N: the 16-row layout atom; K and groups: whole mainloop k-tiles
        return ShapeRule(n_multiple=16, k_multiple=TILE_K, group_multiple=TILE_K)

    def scale_bytes(self) -> int:
        return 8  # a table of 8 e4m3 values per group scale

    def mma_flops_per_s(self, model: CostModel) -> float:
        return model.bf16_flops_per_s * FP8_WGMMA_SPEEDUP * model.mixed_input_efficiency

    def describe_types(self) -> str:
        return (f"{self.act.short} x {self.weight.short} (per-token x e4m3 group scales x per-channel) -> "
                f"{self.out.short}")
