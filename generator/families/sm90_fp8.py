"""Family 'sm90f8': CUTLASS 3.x TMA warp-specialized fp8 x fp8 GEMM on Hopper (sm90a).

e4m3 activations (quantized per token: an [M] fp32 scale per call) times e4m3 weights with one
scale per output channel, both applied in the epilogue with a fused bias:
``y = w_scale[n] * (x_scale[m] * sum_k xq[m, k] * wq[n, k]) + bias[n]``, fp32, rounded once to bf16
or fp16. The weight is a plain [N, K] byte matrix (layout w8_kmajor) that TMA loads as stored; both
operands feed wgmma from shared memory. It is the dense reference point of W4A8 and the 8-bit
activation path at large M. Header: include/mixgemm/sm90/fp8_gemm.h.

Tiles, clusters, schedules and the stream-K variant are the sm90 family's (Sm90MixedSpec, whose
name grammar, wave model and determinism statement it shares); what differs is the types, the
layout, the scale mode and the tensor-core rate (fp8 wgmma runs at twice the bf16 rate, and nothing
is converted in the mainloop).
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Iterable, Optional

from ..dtypes import DType, FP8_ACTIVATIONS, ScaleMode
from ..family import CostModel, ShapeRule, register
from ..layouts import W8_KMAJOR
from .sm90_mixed import CLUSTERS, TILES_M, TILES_N, Decomposition, Schedule, Sm90MixedSpec

OUTPUTS = (DType.BF16, DType.F16)
# The default build: data-parallel tiles for decode (16 tokens), small batch, medium and prefill,
# stream-K tiles for M = 17..256 on narrow layers (the regimes of the sm90 family's table).
# No tile over 64 accumulators per thread (see invalid_reason). H100 bench and tune, 2026-11-23: the
# 128x256 / 256x128 tiles of the first default set ran at a third of cuBLAS's speed at M >= 1024.
DEFAULT_TILES = {((128, 16), (1, 1)), ((128, 64), (1, 1)), ((128, 128), (1, 1)), ((128, 128), (2, 1)),
                 ((64, 128), (1, 1))}
DEFAULT_SK_TILES = {((128, 64), (1, 1)), ((128, 128), (1, 1))}
PROMOTED_ACC_REGS = 64  # fp32 accumulator registers per thread the promoting mainloop can double without spilling
SMOKE = "mixgemm_sm90f8_e4m3xe4m3_c_bf16_t128x64x128_c1x1_coop"
FP8_WGMMA_SPEEDUP = 2.0  # dense e4m3 wgmma against bf16 on the H100 (1979 vs 989 TFLOP/s)


@register
@dataclasses.dataclass(frozen=True)
class Sm90Fp8Spec(Sm90MixedSpec):
    token = "sm90f8"
    title = "Hopper CUTLASS 3.x TMA warp-specialized fp8 x fp8 (per-token x per-channel scales)"
    template = "sm90_fp8.cu.j2"

    @property
    def layout(self) -> str:
        return W8_KMAJOR

    @classmethod
    def product(cls) -> Iterable["Sm90Fp8Spec"]:
        for act, out, tn, tm, cluster, schedule, decomp in itertools.product(
                FP8_ACTIVATIONS, OUTPUTS, TILES_N, TILES_M, CLUSTERS, tuple(Schedule), tuple(Decomposition)):
            yield cls(act, act, ScaleMode.CHANNEL, False, out, tile=(tn, tm, 128), cluster=cluster,
                      schedule=schedule, decomp=decomp)

    def smem_stage_bytes(self) -> int:
        tn, tm, tk = self.tile
        return (tn + tm) * tk * self.act.bits // 8

    def invalid_reason(self) -> Optional[str]:
        if self.act not in FP8_ACTIVATIONS or self.weight != self.act:
            return f"{self.act.short} x {self.weight.short}: this family multiplies e4m3 by e4m3"
        if self.scale != ScaleMode.CHANNEL or self.zero:
            return "per-channel weight scales (mode c), no zero points"
        if self.out not in OUTPUTS:
            return f"output {self.out.short} is not supported ({', '.join(o.short for o in OUTPUTS)})"
        tn, tm, tk = self.tile
        if tk != 128:
            return "tile k must be 128 (128 bytes of fp8)"
        if tn not in TILES_N or tm not in TILES_M:
            return f"tile {tn}x{tm} not in {TILES_N} x {TILES_M}"
        threads = 256 if self.schedule == Schedule.COOPERATIVE else 128
        if tn * tm // threads > PROMOTED_ACC_REGS:
            # the fp32 promotion keeps a second accumulator set (CUTLASS's GmmaFP8Accumulation): 2 x 128
            # registers spill (H100: 128x256 and 256x128 tiles 3x slower than 128x128 at M >= 1024)
            return (f"accumulators need {tn * tm // threads} registers per thread, twice that with the fp32 "
                    f"promotion (> 2 x {PROMOTED_ACC_REGS})")
        return self.schedule_reason()

    def in_default_set(self) -> bool:
        tiles = DEFAULT_SK_TILES if self.decomp == Decomposition.STREAM_K else DEFAULT_TILES
        return (self.tile[:2], self.cluster) in tiles

    def is_smoke(self) -> bool:
        return self.name() == SMOKE

    def shape_rule(self) -> ShapeRule:
        # N: whole 16-row groups (y rows are written in 16-byte vectors); K: 16-byte TMA rows (a
        # partial last k-tile is zero-filled by TMA); per-channel scales only
        return ShapeRule(n_multiple=16, k_multiple=16, group_multiple=1, groups=False)

    def mma_flops_per_s(self, model: CostModel) -> float:
        return model.bf16_flops_per_s * FP8_WGMMA_SPEEDUP

    def describe_types(self) -> str:
        return f"{self.act.short} x {self.weight.short} (per-token x per-channel) -> {self.out.short}"
