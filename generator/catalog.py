"""The catalogue: every kernel mixgemm can generate, as filter(is_valid, product(axes)).

``invalid_reason`` is THE single statement of the constraint set (arch support, dtypes, tile
divisibility, shared memory, registers); ``is_valid`` and every caller go through it.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Optional

from .spec import DType, KernelSpec, ScaleMode, Schedule

SM90_SMEM_BYTES = 232448  # opt-in shared memory per block on H100/H200 (227 KiB)
SM90_TILES_N = (64, 128, 256)
SM90_TILES_M = (16, 32, 64, 128, 256)

AXES = {
    "arch": (90,),
    "act": (DType.BF16, DType.F16),
    "weight": (DType.S4, DType.U4),
    "scale": (ScaleMode.GROUP,),
    "zero": (False, True),
    "tile_n": SM90_TILES_N,
    "tile_m": SM90_TILES_M,
    "cluster": ((1, 1), (2, 1)),
    "schedule": tuple(Schedule),
}

# The default build: one kernel per token-tile regime (decode, small batch, medium, prefill) for
# each supported type pair. Chosen from the stock-CUTLASS sweep in ../shared/TARGETS.md.
DEFAULT_TILES = (((128, 16), (2, 1)), ((128, 64), (1, 1)), ((256, 128), (1, 1)), ((128, 256), (1, 1)))


SMOKE_KERNELS = ("mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop",)


def tile_k(act: DType) -> int:
    """K extent of one mainloop stage: 128 bytes of activations."""
    return 128 * 8 // act.bits


def smem_stage_bytes(spec: KernelSpec) -> int:
    tn, tm, tk = spec.tile
    scale_rows = 2 if spec.zero else 1
    return tn * tk * spec.weight.bits // 8 + tm * tk * spec.act.bits // 8 + scale_rows * tn * spec.act.bits // 8


def smem_epilogue_bytes(spec: KernelSpec) -> int:
    # NOTE(estimate): the TMA epilogue stages subtiles of at most 64 x 32 outputs, double buffered.
    tn, tm, _ = spec.tile
    return 2 * min(tn, 64) * min(tm, 32) * spec.out.bits // 8


def invalid_reason(spec: KernelSpec) -> Optional[str]:
    """None if the spec can be built and run; otherwise why not."""
    tn, tm, tk = spec.tile
    if spec.arch != 90:
        return f"arch sm{spec.arch} has no kernel family yet (sm90a only)"
    if spec.act not in (DType.BF16, DType.F16):
        return f"activation {spec.act.short} is not supported on sm90 (bf16, f16)"
    if spec.weight not in (DType.S4, DType.U4):
        return f"weight {spec.weight.short} is not supported on sm90 (s4, u4)"
    if spec.out != spec.act:
        return "output dtype must equal the activation dtype"
    if spec.scale != ScaleMode.GROUP:
        return "4-bit weights need scales"
    if spec.weight == DType.U4 and not spec.zero:
        return "u4 weights need zero points (unsigned values cannot be centred otherwise)"
    if spec.weight == DType.S4 and spec.zero:
        return "s4 weights are symmetric: use u4 with zero points for asymmetric quantization"
    if tk != tile_k(spec.act):
        return f"tile k must be {tile_k(spec.act)} (128 bytes of activations)"
    if tm not in SM90_TILES_M or tm % 8:
        return f"token tile {tm} not in {SM90_TILES_M}"
    if spec.schedule == Schedule.COOPERATIVE and tn % 128:
        return "cooperative schedule splits the weight tile over 2 warpgroups of 64 rows: tile n % 128 == 0"
    if spec.schedule == Schedule.PINGPONG and tn != 64:
        return "ping-pong schedule uses one warpgroup per tile: tile n == 64"
    cn, cm = spec.cluster
    if cm != 1 or cn not in (1, 2):
        return "cluster must be 1x1 or 2x1 (multicast of activations along N)"
    threads = 256 if spec.schedule == Schedule.COOPERATIVE else 128
    if tn * tm // threads > 128:
        return f"accumulators need {tn * tm // threads} registers per thread (> 128)"
    stages = (SM90_SMEM_BYTES - smem_epilogue_bytes(spec) - 1024) // smem_stage_bytes(spec)
    if stages < 2:
        return f"shared memory holds {stages} stage(s); the mainloop needs at least 2"
    return None


def is_valid(spec: KernelSpec) -> bool:
    return invalid_reason(spec) is None


def product_of_axes() -> Iterable[KernelSpec]:
    for arch, act, weight, scale, zero, tn, tm, cluster, schedule in itertools.product(
        AXES["arch"], AXES["act"], AXES["weight"], AXES["scale"], AXES["zero"],
        AXES["tile_n"], AXES["tile_m"], AXES["cluster"], AXES["schedule"],
    ):
        yield KernelSpec(arch, act, weight, scale, zero, act, (tn, tm, tile_k(act)), cluster, schedule)


def catalog() -> list[KernelSpec]:
    """Every valid kernel, sorted by name."""
    return sorted(filter(is_valid, product_of_axes()), key=KernelSpec.name)


def default_kernels() -> list[KernelSpec]:
    """The kernels built when no filter is given (and committed under kernels_generated/)."""
    wanted = {(tn_tm, cl) for tn_tm, cl in DEFAULT_TILES}
    return [s for s in catalog() if (s.tile[:2], s.cluster) in wanted and s.schedule == Schedule.COOPERATIVE]


def select(filter_expr: Optional[str], archs: Optional[Iterable[int]] = None) -> list[KernelSpec]:
    """Kernels matching a filter: None/'' or 'default' -> the default set, 'all' -> the catalogue,
    'smoke' -> one kernel per arch (what CI compiles),
    else a comma-separated list of tokens; a kernel matches when its name contains every
    '+'-joined part of some token (e.g. 'bf16xs4+t128x16' or a full name)."""
    if not filter_expr or filter_expr == "default":
        specs = default_kernels()
    elif filter_expr == "all":
        specs = catalog()
    elif filter_expr == "smoke":
        specs = [s for s in default_kernels() if s.name() in SMOKE_KERNELS]
    else:
        tokens = [t.strip() for t in filter_expr.split(",") if t.strip()]
        pool = catalog()
        specs = [s for s in pool if any(all(p in s.name() for p in t.split("+")) for t in tokens)]
        unmatched = [t for t in tokens if not any(all(p in s.name() for p in t.split("+")) for s in pool)]
        if unmatched:
            raise ValueError(f"kernel filter token(s) {unmatched} match no kernel in the catalogue "
                             f"(see `mixgemm list --all`)")
    if archs is not None:
        archs = set(archs)
        specs = [s for s in specs if s.arch in archs]
    return specs
