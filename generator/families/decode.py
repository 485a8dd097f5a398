"""Family 'dec': decode-size GEMM (M <= 16) on tensor cores through mma.sync (sm80 and later).

Each warp owns `rows` output features (whole 16x16 weight atoms) and streams its share of K with
many 32-bit weight loads in flight; warps of a CTA split K and, for narrow layers, CTAs split K
too, with a fixed-order reduction (no CTA ever waits on another). Tokens are the mma's n8 side, so
one warp tile serves 8 or 16 tokens. It reads the same packed layout as the sm90 family, so one
PackedWeight serves both. Header: include/mixgemm/decode/decode_gemm.h.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Iterable, Optional

from ..dtypes import ACTIVATIONS, DType, ScaleMode
from ..family import COST, CostModel, KernelSpec, ShapeRule, TYPES_PATTERN, register, weight_only_types_reason
from ..layouts import W4_MMA16

ROWS = (16, 32, 64)   # output features per warp: 1, 2 or 4 layout atoms
TOKENS = (8, 16)      # one or two mma n8 tiles
# Picked by the H100 tunes: 64-row warps win on N >= 8192, 32-row ones on narrower layers, 16-row ones
# with 8 tokens on small layers (N <= 4096, K = 4096); 16 rows x 16 tokens never won
# (benchmarks/results/h100_tune_decode.md, tools/decode_probe.md).
DEFAULT = {(16, 8), (32, 8), (32, 16), (64, 8), (64, 16)}
SMOKE = "mixgemm_dec_bf16xs4_g_bf16_t32x16"


@register
@dataclasses.dataclass(frozen=True)
class DecodeSpec(KernelSpec):
    rows: int
    tokens: int

    token = "dec"
    title = "decode (M <= 16): mma.sync tensor cores, K split over warps and CTAs (sm80+)"
    template = "decode.cu.j2"
    layout = W4_MMA16
    _BODY = re.compile(TYPES_PATTERN + r"_t(?P<rows>\d+)x(?P<tokens>\d+)")

    def body(self) -> str:
        return f"{self.types()}_t{self.rows}x{self.tokens}"

    @classmethod
    def from_body(cls, m: re.Match) -> "DecodeSpec":
        return cls(**cls.type_fields(m), rows=int(m["rows"]), tokens=int(m["tokens"]))

    @classmethod
    def product(cls) -> Iterable["DecodeSpec"]:
        for act, weight, zero, rows, tokens in itertools.product(
                ACTIVATIONS, (DType.S4, DType.U4), (False, True), ROWS, TOKENS):
            yield cls(act, weight, ScaleMode.GROUP, zero, act, rows=rows, tokens=tokens)

    def invalid_reason(self) -> Optional[str]:
        why = weight_only_types_reason(self, (DType.S4, DType.U4))
        if why:
            return why
        if self.rows not in ROWS:
            return f"rows per warp {self.rows} not in {ROWS} (whole 16-row layout atoms)"
        if self.tokens not in TOKENS:
            return f"tokens {self.tokens} not in {TOKENS} (mma.sync n8 tiles)"
        return None

    def in_default_set(self) -> bool:
        return (self.rows, self.tokens) in DEFAULT

    def is_smoke(self) -> bool:
        return self.name() == SMOKE

    def cuda_archs(self) -> tuple[str, ...]:
        return ("80", "90")  # sm_80 code also runs on sm86/87/89

    def shape_rule(self) -> ShapeRule:
        # whole 16x16 atoms; a scale group spans whole k-atoms
        return ShapeRule(n_multiple=16, k_multiple=16, group_multiple=16)

    def max_m(self) -> Optional[int]:
        return self.tokens

    def config(self) -> str:
        return f"warp tile {self.rows} rows x {self.tokens} tokens"

    def estimate_us(self, m: int, n: int, k: int, group_size: int, sms: int, model: CostModel = COST) -> float:
        """A stream of the weights at the bandwidth share such kernels reached on the H100 tune, or
        mma.sync time for the padded token tile, plus the launch. Wider warp tiles keep more bytes in
        flight, but need enough row blocks (N / rows >= ~128) to spread over the machine; 16-token
        tiles cost ~10% more issue work than 8-token ones where M fits either."""
        act_bytes = self.act.bits // 8
        weight_bytes = n * k * self.weight.bits / 8 + (k // group_size) * n * act_bytes * (2 if self.zero else 1)
        bytes_moved = weight_bytes + m * (k + n) * act_bytes
        efficiency = {16: 0.7, 32: 0.75}.get(self.rows, 0.8)
        if n // self.rows < 128:
            efficiency *= 0.8
        if self.tokens > 8:
            efficiency *= 0.9
        mem_s = bytes_moved / (efficiency * model.dram_bytes_per_s)
        mma_s = 2.0 * self.tokens * n * k / model.mma_sync_flops_per_s
        return max(mem_s, mma_s) * 1e6 + model.launch_us
