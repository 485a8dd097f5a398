"""Family 'sm80': CUTLASS 2.x mixed-input GEMM for Ampere (sm80, and sm86/87/89; timed on the H100).

CUTLASS's GemmUniversal with OpMultiplyAddMixedInputUpcast: the narrow weights are loaded from
shared memory with wide ldmatrix, put back into mma operand order with register shuffles
(FragmentShuffler) and converted with byte permutes and packed arithmetic
(FastNumericArrayConverter). Two type pairs, each the upstream pair of width ratio 2:1:
- s8 weights x f16/bf16 activations: mma.sync m16n8k16, fp32 accumulation; the weight is the plain
  [N, K] byte matrix (layout w8_kmajor);
- s4 weights x s8 activations (integer W4A8; activations quantized per token by
  quantize_activations(x, "s8")): mma.sync m16n8k32, s32 accumulation; the weight is the plain
  [N, K] nibble matrix (layout w4_kmajor); output bf16 or fp16.
No offline reordering. This path has no group scales: one scale per output channel (and per token
for s8 activations) and an optional bias are applied in the epilogue (CUTLASS 2.x's epilogue visitor
tree), ``y = w_scale[n] * (x_scale[m] *) sum_k x[m, k] * q[n, k] + bias[n]`` in fp32, rounded once.
Header: include/mixgemm/sm80/mixed_gemm.h.

Tiles are written features x tokens x k, as in every mixgemm family (CUTLASS's GemmShape is
tokens x features x k: its M is the token dimension). A warp tile likewise. Decomposition:
data-parallel, or `_sk`: CUTLASS 2.x's stream-K swizzle, which also does split-K when asked
(split_k = n) and reduces partial tiles in a fixed order.

Weights: s8 (and s4 with s8 activations). u8 would need zero points, which the epilogue cannot apply without per-token
sums of x, and this mainloop has no place to subtract them; u8 (and 4-bit) weights with group
scales and zero points belong to mixgemm's own Ampere mainloop (issue 10, second part).
"""
from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import re
from typing import Iterable, Optional

from ..dtypes import ACTIVATIONS, DType, ScaleMode
from ..family import COST, CostModel, KernelSpec, ShapeRule, TYPES_PATTERN, register
from ..layouts import W4_KMAJOR, W8_KMAJOR

SMEM_BYTES = 99 << 10   # what sm86/sm89 give a CTA (the A100 gives 163 KiB): the sm_80 code runs on all three
REGISTERS = 65536       # per SM
SM_SMEM_BYTES = 228 << 10  # shared memory per SM on the H100, where the estimate's constants were set
REGISTERS_PER_THREAD = 168  # NOTE(estimate): what these kernels take (ptxas: 80-255), for CTAs per SM

TILES_N = (64, 128, 256)
TILES_M = (16, 32, 64, 128, 256)
WARPS_N = (32, 64)
WARPS_M = (16, 32, 64, 128)
STAGES = (3, 4, 5, 6)
OUTPUTS = (DType.BF16, DType.F16)
# (activation, weight) pairs: CUTLASS's mixed-input warp MMA handles a 2:1 width ratio
PAIRS = tuple((a, DType.S8) for a in ACTIVATIONS) + ((DType.S8, DType.S4),)


def tile_k(act: DType) -> int:
    """K extent of one mainloop stage: 128 bytes of activations."""
    return 128 * 8 // act.bits


class Decomposition(enum.Enum):
    """Name suffix: none (data-parallel), `_sk` (CUTLASS 2.x's stream-K swizzle)."""
    DATA_PARALLEL = ""
    STREAM_K = "sk"

    @property
    def short(self) -> str:
        return self.value


# The default build, (tile n, tile m, warp n, warp m, stages): decode (16 tokens), small batch,
# medium and prefill, after CUTLASS's own mixed-input tests (128x128x64 with 64x64 warps and 4
# stages; 16-token tiles with more stages) and stream-K variants for small grids. Not yet tuned.
# The 128x128 prefill tile uses 32-feature x 128-token warps: each converted weight fragment then
# serves 8 mma tiles instead of 4, which halves the conversion and shuffle work per mma. H100,
# m=3456 n=4096 k=2048 (tools/sm80_pair.cu, benchmarks/results/h100_sm80_pair_s12.txt): s8 x f16 in
# 167.8 us against 185.8 with 64x64 warps; f16 x f16 in the same configurations 156.4 / 152.3 us.
# Through the library (benchmarks/results/h100_sm80_warps_s12.txt): 13-22% faster at 3456x4096x2048,
# 2048x28672x4096 and 1024x4096x14336 for bf16/f16 x s8, 21-26% for s8 x s4.
# Keyed by (activation, output).
DEFAULT = {
    (DType.BF16, DType.BF16): ({(128, 16, 32, 16, 6), (128, 32, 32, 32, 5), (128, 64, 64, 32, 4), (128, 128, 32, 128, 4),
                                (256, 128, 64, 64, 3)},
                 {(128, 16, 32, 16, 6), (128, 64, 64, 32, 4), (128, 128, 64, 64, 4)}),
    (DType.F16, DType.F16): ({(128, 16, 32, 16, 6), (128, 64, 64, 32, 4), (128, 128, 32, 128, 4), (256, 128, 64, 64, 3)},
                             {(128, 64, 64, 32, 4)}),
    (DType.S8, DType.BF16): ({(128, 16, 32, 16, 6), (128, 64, 64, 32, 4), (128, 128, 32, 128, 4), (256, 128, 64, 64, 3)},
                             {(128, 16, 32, 16, 6), (128, 64, 64, 32, 4)}),
    # fp16 output: the 64x64-warp prefill tile, the configuration tested on the H100 for it
    (DType.S8, DType.F16): ({(128, 16, 32, 16, 6), (128, 128, 64, 64, 4)}, set()),
}
SMOKE = "mixgemm_sm80_bf16xs8_c_bf16_t128x64x64_w64x32_s4"
# NOTE(estimate): H100 mma.sync dense f16 rate is model.mma_sync_flops_per_s; the conversion in the
# mainloop costs issue slots as on Hopper (CostModel.mixed_input_efficiency).


@register
@dataclasses.dataclass(frozen=True)
class Sm80Spec(KernelSpec):
    tile: tuple[int, int, int]   # (weight rows N, tokens M, K)
    warp: tuple[int, int]        # (weight rows, tokens) per warp
    stages: int
    decomp: Decomposition = Decomposition.DATA_PARALLEL

    token = "sm80"
    title = "Ampere CUTLASS 2.x mixed input (FastNumericArrayConverter + FragmentShuffler, mma.sync; sm80+)"
    template = "sm80.cu.j2"
    _BODY = re.compile(TYPES_PATTERN + r"_t(?P<tn>\d+)x(?P<tm>\d+)x(?P<tk>\d+)_w(?P<wn>\d+)x(?P<wm>\d+)_s(?P<stages>\d+)"
                       r"(?:_(?P<decomp>[a-z]+))?")

    @property
    def layout(self) -> str:
        return W4_KMAJOR if self.weight == DType.S4 else W8_KMAJOR

    @property
    def stream_k(self) -> bool:
        return self.decomp == Decomposition.STREAM_K

    def body(self) -> str:
        (tn, tm, tk), (wn, wm) = self.tile, self.warp
        suffix = f"_{self.decomp.short}" if self.decomp.short else ""
        return f"{self.types()}_t{tn}x{tm}x{tk}_w{wn}x{wm}_s{self.stages}{suffix}"

    @classmethod
    def from_body(cls, m: re.Match) -> "Sm80Spec":
        decomps = {d.short: d for d in Decomposition if d.short}
        if m["decomp"] is not None and m["decomp"] not in decomps:
            raise ValueError(f"unknown decomposition suffix {m['decomp']!r}; known: {', '.join(decomps)}")
        return cls(**cls.type_fields(m), tile=(int(m["tn"]), int(m["tm"]), int(m["tk"])),
                   warp=(int(m["wn"]), int(m["wm"])), stages=int(m["stages"]),
                   decomp=decomps[m["decomp"]] if m["decomp"] else Decomposition.DATA_PARALLEL)

    @classmethod
    def product(cls) -> Iterable["Sm80Spec"]:
        for (act, weight), out, tn, tm, wn, wm, stages, decomp in itertools.product(
                PAIRS, OUTPUTS, TILES_N, TILES_M, WARPS_N, WARPS_M, STAGES, tuple(Decomposition)):
            yield cls(act, weight, ScaleMode.CHANNEL, False, out, tile=(tn, tm, tile_k(act)), warp=(wn, wm),
                      stages=stages, decomp=decomp)

    @property
    def warps(self) -> int:
        return (self.tile[0] // self.warp[0]) * (self.tile[1] // self.warp[1])

    def smem_bytes(self) -> int:
        tn, tm, tk = self.tile
        return self.stages * (tm * tk * self.act.bits // 8 + tn * tk * self.weight.bits // 8)

    def invalid_reason(self) -> Optional[str]:
        if (self.act, self.weight) not in PAIRS:
            return (f"{self.act.short} x {self.weight.short}: this family multiplies s8 weights by bf16/f16 "
                    "activations and s4 weights by s8 ones (u8 needs zero points, which its epilogue cannot apply; "
                    "4-bit weights with 16-bit activations need group scales in the mainloop)")
        if self.scale != ScaleMode.CHANNEL or self.zero:
            return "per-channel weight scales applied in the epilogue (mode c), no zero points"
        if self.out not in OUTPUTS or (self.act in ACTIVATIONS and self.out != self.act):
            return "output dtype: the activation dtype (16-bit activations), bf16 or f16 (s8 activations)"
        (tn, tm, tk), (wn, wm) = self.tile, self.warp
        if tk != tile_k(self.act):
            return f"tile k must be {tile_k(self.act)} (128 bytes of activations per stage row)"
        return tiling_reason((tn, tm), (wn, wm), self.stages, self.smem_bytes(),
                             (TILES_N, TILES_M, WARPS_N, WARPS_M, STAGES), warp_counts=(2, 4, 8))

    def in_default_set(self) -> bool:
        data_parallel, stream_k = DEFAULT.get((self.act, self.out), (set(), set()))
        key = (*self.tile[:2], *self.warp, self.stages)
        return key in (stream_k if self.stream_k else data_parallel)

    def is_smoke(self) -> bool:
        return self.name() == SMOKE

    def cuda_archs(self) -> tuple[str, ...]:
        return ("80", "90")  # sm_80 code also runs on sm86/87/89; the H100 needs its own

    def shape_rule(self) -> ShapeRule:
        # N: the epilogue's 16-byte vectors of y, bias and scales (and the layout's 16 rows); K: 16-byte
        # rows of weights and activations (cp.async); per-channel scales only
        return ShapeRule(n_multiple=16, k_multiple=128 // min(self.weight.bits, self.act.bits), group_multiple=1,
                         groups=False)

    @property
    def deterministic(self) -> bool:
        # data-parallel: every CTA reduces its whole K in one order, whatever the tile; stream-K's split
        # depends on M, N, K and the SM count
        return not self.stream_k

    @property
    def splits_k(self) -> bool:
        return self.stream_k

    def config(self) -> str:
        sk = " stream-K" if self.stream_k else ""
        return f"tile {'x'.join(map(str, self.tile))} warp {'x'.join(map(str, self.warp))} {self.stages} stages{sk}"

    def describe_types(self) -> str:
        scales = "per-token x per-channel" if self.act.bits == 8 else "per-channel"
        return f"{self.act.short} x {self.weight.short} ({scales}) -> {self.out.short}"

    def estimate_us(self, m: int, n: int, k: int, group_size: int, sms: int, model: CostModel = COST) -> float:
        """tiled_estimate_us: waves of CTAs limited by bandwidth or mma.sync time (one per-channel
        scale per weight row)."""
        return tiled_estimate_us(self.tile[0], self.tile[1], m, n, k, self.weight.bits, self.act.bits,
                                 self.smem_bytes(), self.warps, sms, model, stream_k=self.stream_k,
                                 scale_bytes=self.tile[0] * 2)


def tiled_estimate_us(tn: int, tm: int, m: int, n: int, k: int, weight_bits: int, act_bits: int, smem_bytes: int,
                      warps: int, sms: int, model: CostModel = COST, stream_k: bool = False,
                      scale_bytes: int = 0) -> float:
    """Estimate of a data-parallel (or stream-K) mma.sync GEMM of tn x tm tiles: waves of CTAs (as
    many per SM as shared memory and registers allow), each CTA limited by its SM's share of DRAM
    bandwidth (weights and their scales, and activations from L2) or by mma.sync time for the
    padded token tile, plus a fixed cost per wave. Stream-K (split_k = 0) is modelled as spreading
    the same work evenly over all SMs in one pass, plus one fixup per tile."""
    per_sm = max(1, min(SM_SMEM_BYTES // smem_bytes, REGISTERS // (warps * 32 * REGISTERS_PER_THREAD)))
    ctas = math.ceil(n / tn) * math.ceil(m / tm)
    slots = sms * per_sm
    weight_bytes = tn * k * weight_bits // 8 + scale_bytes
    x_bytes = min(tm, m) * k * act_bits // 8
    flops = 2.0 * tn * tm * k
    # s8 x s8 mma.sync runs at twice the f16 rate
    mma = model.mma_sync_flops_per_s * model.mixed_input_efficiency * (2 if act_bits == 8 else 1)

    def cta_s(active: int) -> float:
        sm_bw = min(model.dram_bytes_per_s / active, model.sm_bandwidth_share * model.dram_bytes_per_s / sms)
        return max((weight_bytes + x_bytes / model.l2_reuse) / sm_bw, flops / (mma / active))

    if stream_k and ctas < slots:
        total = max((n * k * weight_bits / 8 + m * k * act_bits / 8 / model.l2_reuse) / model.dram_bytes_per_s,
                    2.0 * n * max(m, 16) * k / mma)
        return total * 1e6 + model.tile_overhead_us + 1.0 + model.launch_us
    waves = math.ceil(ctas / slots)
    active = min(ctas, slots)
    return waves * (cta_s(active) * 1e6 + model.tile_overhead_us) + model.launch_us


def tiling_reason(tile: tuple[int, int], warp: tuple[int, int], stages: int, smem_bytes: int,
                  axes: tuple[tuple[int, ...], ...], warp_counts: tuple[int, ...]) -> Optional[str]:
    """Why a CTA tiling of an mma.sync family cannot be built (None if it can): tile and warp tile from
    the family's axes (tiles n, tiles m, warps n, warps m, stages), whole warps, at most 128 accumulator
    registers per thread, shared memory within what sm86/sm89 give a CTA."""
    (tn, tm), (wn, wm) = tile, warp
    tiles_n, tiles_m, warps_n, warps_m, stages_ok = axes
    if tn not in tiles_n or tm not in tiles_m:
        return f"tile {tn}x{tm} not in {tiles_n} x {tiles_m}"
    if wn not in warps_n or wm not in warps_m or tn % wn or tm % wm:
        return f"warp tile {wn}x{wm} must divide the tile {tn}x{tm} (warp n in {warps_n}, m in {warps_m})"
    warps = (tn // wn) * (tm // wm)
    if warps not in warp_counts:
        return f"{warps} warps per CTA ({', '.join(map(str, warp_counts[:-1]))} or {warp_counts[-1]})"
    if wn * wm // 32 > 128:
        return f"accumulators need {wn * wm // 32} registers per thread (> 128)"
    if stages not in stages_ok:
        return f"stages {stages} not in {stages_ok}"
    if smem_bytes > SMEM_BYTES:
        return (f"{stages} stages need {smem_bytes} bytes of shared memory, more than sm86/sm89 give "
                f"a CTA ({SMEM_BYTES})")
    return None
