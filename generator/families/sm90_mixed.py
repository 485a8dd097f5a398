"""Family 'sm90': CUTLASS 3.x TMA warp-specialized mixed-input GEMM on Hopper (sm90a).

A/B swapped so the narrow weight is the register-sourced wgmma operand and tokens are the small
side of the tile: tile = (weight rows N, tokens M, K), cluster = (along N, along M). Header:
include/mixgemm/sm90/mixed_gemm.h. Every kernel reduces K in one CTA in the same order, so results
are bit-identical run to run and do not depend on the tile, hence on M.
"""
from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import re
from typing import Iterable, Optional

from ..dtypes import ACTIVATIONS, DType, ScaleMode
from ..family import COST, CostModel, KernelSpec, ShapeRule, TYPES_PATTERN, register, weight_only_types_reason
from ..layouts import W4_MMA16

SMEM_BYTES = 232448  # opt-in shared memory per block on H100/H200 (227 KiB)
TILES_N = (64, 128, 256)
TILES_M = (16, 32, 64, 128, 256)
CLUSTERS = ((1, 1), (2, 1))
# The default build: one kernel per token-tile regime (decode, small batch, medium, prefill) for
# each type pair, chosen from a sweep of stock CUTLASS configurations on the H100 (docs/TARGETS.md).
DEFAULT_TILES = {((128, 16), (2, 1)), ((128, 64), (1, 1)), ((256, 128), (1, 1)), ((128, 256), (1, 1))}
SMOKE = "mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop"


class Schedule(enum.Enum):
    COOPERATIVE = ("coop", "Cooperative")
    PINGPONG = ("pp", "Pingpong")

    def __init__(self, short: str, cpp: str):
        self.short = short
        self.cpp = cpp


def tile_k(act: DType) -> int:
    """K extent of one mainloop stage: 128 bytes of activations."""
    return 128 * 8 // act.bits


@register
@dataclasses.dataclass(frozen=True)
class Sm90MixedSpec(KernelSpec):
    tile: tuple[int, int, int]
    cluster: tuple[int, int]
    schedule: Schedule

    token = "sm90"
    title = "Hopper CUTLASS 3.x TMA warp-specialized mixed input (wgmma)"
    template = "sm90_mixed.cu.j2"
    layout = W4_MMA16
    _BODY = re.compile(TYPES_PATTERN + r"_t(?P<tn>\d+)x(?P<tm>\d+)x(?P<tk>\d+)_c(?P<cn>\d+)x(?P<cm>\d+)_(?P<sched>[a-z]+)")

    def body(self) -> str:
        (tn, tm, tk), (cn, cm) = self.tile, self.cluster
        return f"{self.types()}_t{tn}x{tm}x{tk}_c{cn}x{cm}_{self.schedule.short}"

    @classmethod
    def from_body(cls, m: re.Match) -> "Sm90MixedSpec":
        schedules = {s.short: s for s in Schedule}
        if m["sched"] not in schedules:
            raise ValueError(f"unknown schedule {m['sched']!r}; known: {', '.join(schedules)}")
        return cls(**cls.type_fields(m), tile=(int(m["tn"]), int(m["tm"]), int(m["tk"])),
                   cluster=(int(m["cn"]), int(m["cm"])), schedule=schedules[m["sched"]])

    @classmethod
    def product(cls) -> Iterable["Sm90MixedSpec"]:
        for act, weight, zero, tn, tm, cluster, schedule in itertools.product(
                ACTIVATIONS, (DType.S4, DType.U4), (False, True), TILES_N, TILES_M, CLUSTERS, tuple(Schedule)):
            yield cls(act, weight, ScaleMode.GROUP, zero, act, tile=(tn, tm, tile_k(act)), cluster=cluster,
                      schedule=schedule)

    def smem_stage_bytes(self) -> int:
        tn, tm, tk = self.tile
        scale_rows = 2 if self.zero else 1
        return tn * tk * self.weight.bits // 8 + tm * tk * self.act.bits // 8 + scale_rows * tn * self.act.bits // 8

    def smem_epilogue_bytes(self) -> int:
        # NOTE(estimate): the TMA epilogue stages subtiles of at most 64 x 32 outputs, double buffered.
        tn, tm, _ = self.tile
        return 2 * min(tn, 64) * min(tm, 32) * self.out.bits // 8

    def invalid_reason(self) -> Optional[str]:
        why = weight_only_types_reason(self, (DType.S4, DType.U4))
        if why:
            return why
        tn, tm, tk = self.tile
        if tk != tile_k(self.act):
            return f"tile k must be {tile_k(self.act)} (128 bytes of activations)"
        if tm not in TILES_M:
            return f"token tile {tm} not in {TILES_M}"
        if self.schedule == Schedule.COOPERATIVE and tn % 128:
            return "cooperative schedule splits the weight tile over 2 warpgroups of 64 rows: tile n % 128 == 0"
        if self.schedule == Schedule.PINGPONG and tn != 64:
            return "ping-pong schedule uses one warpgroup per tile: tile n == 64"
        if self.cluster not in CLUSTERS:
            return "cluster must be 1x1 or 2x1 (multicast of activations along N)"
        threads = 256 if self.schedule == Schedule.COOPERATIVE else 128
        if tn * tm // threads > 128:
            return f"accumulators need {tn * tm // threads} registers per thread (> 128)"
        stages = (SMEM_BYTES - self.smem_epilogue_bytes() - 1024) // self.smem_stage_bytes()
        if stages < 2:
            return f"shared memory holds {stages} stage(s); the mainloop needs at least 2"
        return None

    def in_default_set(self) -> bool:
        return (self.tile[:2], self.cluster) in DEFAULT_TILES and self.schedule == Schedule.COOPERATIVE

    def is_smoke(self) -> bool:
        return self.name() == SMOKE

    def cuda_archs(self) -> tuple[str, ...]:
        return ("90a",)  # wgmma and setmaxnreg need the arch-specific target

    def shape_rule(self) -> ShapeRule:
        # N: the 16-row layout atom; K and groups: whole mainloop k-tiles (128 bytes of activations)
        return ShapeRule(n_multiple=16, k_multiple=tile_k(self.act), group_multiple=tile_k(self.act))

    @property
    def deterministic(self) -> bool:
        return True

    def config(self) -> str:
        return f"tile {'x'.join(map(str, self.tile))} cluster {'x'.join(map(str, self.cluster))} {self.schedule.short}"

    def estimate_us(self, m: int, n: int, k: int, group_size: int, sms: int, model: CostModel = COST) -> float:
        """Roofline estimate for a persistent kernel: waves of tiles, each limited by its SM's share
        of DRAM bandwidth (weights) and L2 (activations) or by tensor-core time, plus a fixed cost per
        tile. A token tile larger than M moves only M rows but still pays tensor-core time for its width."""
        tn, tm, _ = self.tile
        tiles = math.ceil(n / tn) * math.ceil(m / tm)
        active = min(tiles, sms)
        waves = math.ceil(tiles / sms)
        act_bytes = self.act.bits // 8
        weight_bytes = tn * k * self.weight.bits / 8 + (k // group_size) * tn * act_bytes * (2 if self.zero else 1)
        x_bytes = min(tm, m) * k * act_bytes
        sm_bw = min(model.dram_bytes_per_s / active, model.sm_bandwidth_share * model.dram_bytes_per_s / sms)
        sm_flops = model.bf16_flops_per_s * model.mixed_input_efficiency / sms
        tile_s = max((weight_bytes + x_bytes / model.l2_reuse) / sm_bw, 2.0 * tn * tm * k / sm_flops)
        return waves * (tile_s * 1e6 + model.tile_overhead_us) + model.launch_us
