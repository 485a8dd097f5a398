"""Family 'sm90': CUTLASS 3.x TMA warp-specialized mixed-input GEMM on Hopper (sm90a).

A/B swapped so the narrow weight is the register-sourced wgmma operand and tokens are the small
side of the tile: tile = (weight rows N, tokens M, K), cluster = (along N, along M). Header:
include/mixgemm/sm90/mixed_gemm.h. Every data-parallel kernel reduces K in one CTA in the same
order, so results are bit-identical run to run and do not depend on the tile, hence on M.

Decomposition (name suffix): none is CUTLASS's data-parallel persistent scheduler; `_sk` is its
stream-K scheduler (cooperative schedule only), which splits K over CTAs when the output tiles
leave SMs idle (M = 17..256 on narrow layers). Its partial sums are reduced in K order
(ReductionMode::Deterministic), so results are bit-identical run to run for one problem shape,
split_k and SM count, but the split depends on M, N, K and the SM count: rounding differs from
the data-parallel kernels and from other M, hence `deterministic` is False for it.
"""
from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import re
from typing import Iterable, Optional

from ..dtypes import ACTIVATIONS, DType, ScaleMode
from ..family import (COST, WEIGHTS, CostModel, KernelSpec, ShapeRule, TYPES_PATTERN, default_tier, register,
                      weight_only_types_reason)
from ..layouts import layout_for_bits

SMEM_BYTES = 232448  # opt-in shared memory per block on H100/H200 (227 KiB)
TILES_N = (64, 128, 256)
TILES_M = (16, 32, 64, 128, 256)
CLUSTERS = ((1, 1), (2, 1))
# The default build: one kernel per token-tile regime (decode, small batch, medium, prefill) for
# each type pair, chosen from a sweep of stock CUTLASS configurations on the H100 (docs/TARGETS.md).
DEFAULT_TILES = {((128, 16), (2, 1)), ((128, 64), (1, 1)), ((256, 128), (1, 1)), ((128, 256), (1, 1))}
# Stream-K variants for M = 17..256, where narrow layers give fewer output tiles than SMs; the
# 256-row one for large layers at M = 32-128 (H100 tune, 2026-11-23: 6-19% faster than 128x64 on
# 28672x4096, 10240x8192, 57344x8192 and 8192x28672).
DEFAULT_SK_TILES = {((128, 64), (1, 1)), ((256, 64), (1, 1)), ((128, 128), (1, 1)), ((128, 256), (1, 1))}
# Ping-pong 64-row tiles for M = 64-512 on small and mid-sized layers (H100 tune of 26 tiles on 17
# shapes, 2026-11-23: t64x64 / t64x128 / t64x256 were the fastest at 24 of 68 points, 5-16% ahead
# of the best cooperative tile on 2048x1792 to 8192x8192; benchmarks/results/h100_tune_tiles_m64_512.json).
DEFAULT_PP_TILES = {((64, 64), (1, 1)), ((64, 128), (1, 1)), ((64, 256), (1, 1))}
# Per default_tier, (data-parallel tiles, stream-K tiles): 8-bit weights (not yet tuned) the four
# regimes and one stream-K tile for M = 17..256; e5m2 only a small-batch and a prefill tile.
DEFAULT = {"4bit": (DEFAULT_TILES | DEFAULT_PP_TILES, DEFAULT_SK_TILES),
           "8bit": (DEFAULT_TILES, {((128, 64), (1, 1))}),
           "e5m2": ({((128, 64), (1, 1)), ((128, 256), (1, 1))}, set())}
SMOKE = "mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop"


class Schedule(enum.Enum):
    COOPERATIVE = ("coop", "Cooperative")
    PINGPONG = ("pp", "Pingpong")

    def __init__(self, short: str, cpp: str):
        self.short = short
        self.cpp = cpp


class Decomposition(enum.Enum):
    """How output tiles map to CTAs: (name suffix, CUTLASS tile scheduler tag; void = persistent)."""
    DATA_PARALLEL = ("", "void")
    STREAM_K = ("sk", "cutlass::gemm::StreamKScheduler")

    def __init__(self, short: str, cpp: str):
        self.short = short
        self.cpp = cpp


# CUTLASS's stream-K heuristic (PersistentTileSchedulerSm90StreamKParams, tile_scheduler_params.h)
SK_MIN_ITERS = 8        # min_iters_per_sk_unit_: no stream-K unit gets fewer k tiles than this
# NOTE(estimate): the deterministic fixup is a chain: each split waits for the previous one, then
# adds its fp32 partial tile through the workspace (one store and one load, from L2), plus a
# barrier round trip. Not fitted: no stream-K kernel was in the measured profile when this was set.
SK_FIXUP_SYNC_US = 0.5


def tile_k(act: DType) -> int:
    """K extent of one mainloop stage: 128 bytes of activations."""
    return 128 * 8 // act.bits


@register
@dataclasses.dataclass(frozen=True)
class Sm90MixedSpec(KernelSpec):
    tile: tuple[int, int, int]
    cluster: tuple[int, int]
    schedule: Schedule
    decomp: Decomposition = Decomposition.DATA_PARALLEL

    token = "sm90"
    title = "Hopper CUTLASS 3.x TMA warp-specialized mixed input (wgmma)"
    template = "sm90_mixed.cu.j2"
    _BODY = re.compile(TYPES_PATTERN + r"_t(?P<tn>\d+)x(?P<tm>\d+)x(?P<tk>\d+)_c(?P<cn>\d+)x(?P<cm>\d+)_(?P<sched>[a-z]+)"
                       r"(?:_(?P<decomp>[a-z]+))?")

    @property
    def layout(self) -> str:
        return layout_for_bits(self.weight.bits)

    def body(self) -> str:
        (tn, tm, tk), (cn, cm) = self.tile, self.cluster
        suffix = f"_{self.decomp.short}" if self.decomp.short else ""
        return f"{self.types()}_t{tn}x{tm}x{tk}_c{cn}x{cm}_{self.schedule.short}{suffix}"

    @classmethod
    def from_body(cls, m: re.Match) -> "Sm90MixedSpec":
        schedules = {s.short: s for s in Schedule}
        if m["sched"] not in schedules:
            raise ValueError(f"unknown schedule {m['sched']!r}; known: {', '.join(schedules)}")
        decomps = {d.short: d for d in Decomposition if d.short}
        if m["decomp"] is not None and m["decomp"] not in decomps:
            raise ValueError(f"unknown decomposition suffix {m['decomp']!r}; known: {', '.join(decomps)}")
        return cls(**cls.type_fields(m), tile=(int(m["tn"]), int(m["tm"]), int(m["tk"])),
                   cluster=(int(m["cn"]), int(m["cm"])), schedule=schedules[m["sched"]],
                   decomp=decomps[m["decomp"]] if m["decomp"] else Decomposition.DATA_PARALLEL)

    @classmethod
    def product(cls) -> Iterable["Sm90MixedSpec"]:
        for act, weight, zero, tn, tm, cluster, schedule, decomp in itertools.product(
                ACTIVATIONS, WEIGHTS, (False, True), TILES_N, TILES_M, CLUSTERS, tuple(Schedule),
                tuple(Decomposition)):
            yield cls(act, weight, ScaleMode.GROUP, zero, act, tile=(tn, tm, tile_k(act)), cluster=cluster,
                      schedule=schedule, decomp=decomp)

    def smem_stage_bytes(self) -> int:
        tn, tm, tk = self.tile
        scale_rows = 2 if self.zero else 1
        return tn * tk * self.weight.bits // 8 + tm * tk * self.act.bits // 8 + scale_rows * tn * self.act.bits // 8

    def scale_bytes(self) -> int:
        """Bytes of one group scale (and of one zero term) as the mainloop reads it."""
        return self.act.bits // 8

    def mma_flops_per_s(self, model: CostModel) -> float:
        """The GPU's tensor-core rate for this kernel's mainloop (conversion in the loop costs issue slots)."""
        return model.bf16_flops_per_s * model.mixed_input_efficiency

    def smem_epilogue_bytes(self) -> int:
        # NOTE(estimate): the TMA epilogue stages subtiles of at most 64 x 32 outputs, double buffered.
        tn, tm, _ = self.tile
        return 2 * min(tn, 64) * min(tm, 32) * self.out.bits // 8

    def invalid_reason(self) -> Optional[str]:
        why = weight_only_types_reason(self)
        if why:
            return why
        tn, tm, tk = self.tile
        if tk != tile_k(self.act):
            return f"tile k must be {tile_k(self.act)} (128 bytes of activations)"
        if tm not in TILES_M:
            return f"token tile {tm} not in {TILES_M}"
        return self.schedule_reason()

    def schedule_reason(self) -> Optional[str]:
        """The CUTLASS schedule, cluster and resource rules the sm90 families share."""
        tn, tm, _ = self.tile
        if self.schedule == Schedule.COOPERATIVE and tn % 128:
            return "cooperative schedule splits the weight tile over 2 warpgroups of 64 rows: tile n % 128 == 0"
        if self.schedule == Schedule.PINGPONG and tn != 64:
            return "ping-pong schedule uses one warpgroup per tile: tile n == 64"
        if self.decomp == Decomposition.STREAM_K and self.schedule != Schedule.COOPERATIVE:
            return ("stream-K (_sk) needs the cooperative schedule: CUTLASS's ping-pong kernel does not "
                    "support the stream-K tile scheduler")
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
        data_parallel, stream_k = DEFAULT[default_tier(self.weight)]
        tiles = stream_k if self.decomp == Decomposition.STREAM_K else data_parallel
        # the schedule follows from the tile (invalid_reason: 64 rows ping-pong, 128/256 cooperative)
        return (self.tile[:2], self.cluster) in tiles

    def is_smoke(self) -> bool:
        return self.name() == SMOKE

    def cuda_archs(self) -> tuple[str, ...]:
        return ("90a",)  # wgmma and setmaxnreg need the arch-specific target

    def shape_rule(self) -> ShapeRule:
        # N: the 16-row layout atom; K and groups: whole mainloop k-tiles (128 bytes of activations)
        return ShapeRule(n_multiple=16, k_multiple=tile_k(self.act), group_multiple=tile_k(self.act))

    @property
    def deterministic(self) -> bool:
        # stream-K: run-to-run reproducible (fixed-order fixup) but the split, hence the rounding,
        # depends on M (and N, K, SM count); see the module docstring
        return self.decomp == Decomposition.DATA_PARALLEL

    @property
    def splits_k(self) -> bool:
        return self.decomp == Decomposition.STREAM_K

    def config(self) -> str:
        sk = " stream-K" if self.decomp == Decomposition.STREAM_K else ""
        return (f"tile {'x'.join(map(str, self.tile))} cluster {'x'.join(map(str, self.cluster))} "
                f"{self.schedule.short}{sk}")

    def sk_decomposition(self, m: int, n: int, k: int, sms: int) -> Optional[tuple[int, int, int]]:
        """(data-parallel tiles, stream-K tiles, stream-K units) that CUTLASS's Heuristic
        decomposition (split_k = 0) gives the problem, or None where it stays data-parallel. A
        simplified copy of PersistentTileSchedulerSm90StreamKParams (CUTLASS 4.2): one CTA per SM,
        swizzle 1; its split-K special case (units a multiple of tiles) costs the same here."""
        if self.decomp != Decomposition.STREAM_K:
            return None
        tn, tm, tk = self.tile
        cluster = self.cluster[0] * self.cluster[1]
        tiles = math.ceil(n / tn / self.cluster[0]) * self.cluster[0] * math.ceil(m / tm)
        k_tiles = math.ceil(k / tk)
        wave = sms // cluster * cluster
        full_waves, tail = divmod(tiles, wave)
        # no wave quantization, too little K to split, or a tail wave more than half full
        if tail == 0 or k_tiles <= SK_MIN_ITERS or 2 * tail >= wave:
            return None
        sk_tiles = (tiles - max(full_waves - 1, 0) * wave) // cluster * cluster
        units = min(wave, sk_tiles * k_tiles // SK_MIN_ITERS // cluster * cluster)
        if sk_tiles == 0 or units == 0:
            return None
        return tiles - sk_tiles, sk_tiles, units

    def estimate_us(self, m: int, n: int, k: int, group_size: int, sms: int, model: CostModel = COST) -> float:
        """Roofline estimate for a persistent kernel: waves of tiles, each limited by its SM's share
        of DRAM bandwidth (weights) and L2 (activations) or by tensor-core time, plus a fixed cost per
        tile. A token tile larger than M moves only M rows but still pays tensor-core time for its width.

        Stream-K (where sk_decomposition says CUTLASS splits): the data-parallel tiles run in full
        waves, then the stream-K tiles' k iterations are spread evenly over `units` CTAs, all SMs
        busy: the model sees output tiles x splits (splits = units / stream-K tiles) work items of
        1/splits of a tile each, plus a fixup chain of ceil(splits) steps, each a barrier round trip
        and one fp32 partial tile stored and loaded through L2. Where CUTLASS stays data-parallel the
        estimate equals the plain kernel's (ties go to the plain kernel by name)."""
        tn, tm, _ = self.tile
        tiles = math.ceil(n / tn) * math.ceil(m / tm)

        def tile_s(active: int) -> float:
            act_bytes = self.act.bits // 8
            weight_bytes = tn * k * self.weight.bits / 8 + (k // group_size) * tn * self.scale_bytes() * (2 if self.zero else 1)
            x_bytes = min(tm, m) * k * act_bytes
            sm_bw = min(model.dram_bytes_per_s / active, model.sm_bandwidth_share * model.dram_bytes_per_s / sms)
            sm_flops = self.mma_flops_per_s(model) / sms
            return max((weight_bytes + x_bytes / model.l2_reuse) / sm_bw, 2.0 * tn * tm * k / sm_flops)

        split = self.sk_decomposition(m, n, k, sms)
        if split is None:
            waves = math.ceil(tiles / sms)
            return waves * (tile_s(min(tiles, sms)) * 1e6 + model.tile_overhead_us) + model.launch_us
        dp_tiles, sk_tiles, units = split
        splits = units / sk_tiles
        full = tile_s(sms) * 1e6
        l2_sm_bw = model.l2_reuse * model.sm_bandwidth_share * model.dram_bytes_per_s / sms
        fixup_us = SK_FIXUP_SYNC_US + 2 * tn * tm * 4 / l2_sm_bw * 1e6
        dp_us = math.ceil(dp_tiles / sms) * (full + model.tile_overhead_us)
        return dp_us + full / splits + model.tile_overhead_us + math.ceil(splits) * fixup_us + model.launch_us
