"""Family 'dec': decode-size GEMM (M <= 64) on tensor cores through mma.sync (sm80 and later).

Each warp owns `rows` output features (whole 16x16 weight atoms) and streams its share of K with
many 32-bit weight loads in flight; warps of a CTA split K and, for narrow layers, CTAs split K
too, with a fixed-order reduction (no CTA ever waits on another). Tokens are the mma's n8 side, so
one warp tile serves 8, 16, 32 or 64 tokens (max_m), reading the weights once. It reads the same
packed layout as the sm90 family, so one PackedWeight serves both. Header: include/mixgemm/decode/decode_gemm.h.
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

ROWS = (16, 32, 64)   # output features per warp: 1, 2 or 4 layout atoms
TOKENS = (8, 16, 32, 64)  # 1, 2, 4 or 8 mma n8 tiles
# Picked by the H100 tunes: 64-row warps win on N >= 8192, 32-row ones on narrower layers, 16-row ones
# with 8 tokens on small layers (N <= 4096, K = 4096); 16 rows x 16 tokens never won
# (benchmarks/results/h100_tune_decode.md, tools/decode_probe.md).
# 32 and 64 tokens (M = 17..64, where the sm90 fallback has a ~20 us floor on small layers): 16- and
# 32-row warps, not yet tuned. 64-row warps are left out there: with 64 or more accumulator registers
# per thread (rows / 16 * tokens >= 128) they run one CTA per SM, as 32 rows x 64 tokens does.
# Per default_tier: 8-bit weights (not yet tuned) one warp tile per token count, 32 rows (64 for 8
# tokens too); e5m2 an 8- and a 64-token one.
DEFAULT = {"4bit": {(16, 8), (32, 8), (32, 16), (64, 8), (64, 16), (16, 32), (32, 32), (16, 64), (32, 64)},
           "8bit": {(32, 8), (64, 8), (32, 16), (32, 32), (32, 64)},
           "e5m2": {(32, 8), (32, 64)}}
# Bytes per second that SMs pull x from L2 (through L1) in total: each warp row block reads its K
# slice of x for the M tokens (R row blocks of a CTA share it in L1, but small layers run R = 1), so x
# traffic is N / rows times the activations. An assumption of H100-class hardware, not a fit.
L2_TO_SM_BYTES_PER_S = 6.0e12
SMOKE = "mixgemm_dec_bf16xs4_g_bf16_t32x16"


@register
@dataclasses.dataclass(frozen=True)
class DecodeSpec(KernelSpec):
    rows: int
    tokens: int

    token = "dec"
    title = "decode (M <= 64): mma.sync tensor cores, K split over warps and CTAs (sm80+)"
    template = "decode.cu.j2"
    _BODY = re.compile(TYPES_PATTERN + r"_t(?P<rows>\d+)x(?P<tokens>\d+)")

    @property
    def layout(self) -> str:
        return layout_for_bits(self.weight.bits)

    def body(self) -> str:
        return f"{self.types()}_t{self.rows}x{self.tokens}"

    @classmethod
    def from_body(cls, m: re.Match) -> "DecodeSpec":
        return cls(**cls.type_fields(m), rows=int(m["rows"]), tokens=int(m["tokens"]))

    @classmethod
    def product(cls) -> Iterable["DecodeSpec"]:
        for act, weight, zero, rows, tokens in itertools.product(
                ACTIVATIONS, WEIGHTS, (False, True), ROWS, TOKENS):
            yield cls(act, weight, ScaleMode.GROUP, zero, act, rows=rows, tokens=tokens)

    def invalid_reason(self) -> Optional[str]:
        why = weight_only_types_reason(self)
        if why:
            return why
        if self.rows not in ROWS:
            return f"rows per warp {self.rows} not in {ROWS} (whole 16-row layout atoms)"
        if self.tokens not in TOKENS:
            return f"tokens {self.tokens} not in {TOKENS} (mma.sync n8 tiles)"
        if self.rows * self.tokens > 64 * 32:
            return (f"{self.rows} rows x {self.tokens} tokens: the reduction buffer needs 136 KB of shared "
                    "memory, more than sm86/89 give a CTA (99 KB)")
        return None

    def in_default_set(self) -> bool:
        return (self.rows, self.tokens) in DEFAULT[default_tier(self.weight)]

    def is_smoke(self) -> bool:
        return self.name() == SMOKE

    def cuda_archs(self) -> tuple[str, ...]:
        return ("80", "90")  # sm_80 code also runs on sm86/87/89

    def shape_rule(self) -> ShapeRule:
        # whole 16x16 atoms; a scale group spans whole k-atoms
        return ShapeRule(n_multiple=16, k_multiple=16, group_multiple=16)

    def max_m(self) -> Optional[int]:
        return self.tokens

    @property
    def splits_k(self) -> bool:
        return True

    def launch_overlap_us(self, capability: int) -> float:
        # Programmatic dependent launch on sm_90+: under a CUDA graph each decode kernel started
        # 1-2 us before the previous one ended (torch.profiler timeline of the llama3-8b layer,
        # tools/layer_timeline.py, H100), which isolated timings (tune) do not see.
        return 1.5 if capability >= 90 else 0.0

    def config(self) -> str:
        return f"warp tile {self.rows} rows x {self.tokens} tokens"

    def estimate_us(self, m: int, n: int, k: int, group_size: int, sms: int, model: CostModel = COST) -> float:
        """The slowest of three streams, plus the launch: the weights from DRAM at the bandwidth share
        such kernels reached on the H100 tune; x from L2 into every warp row block (N / rows copies of
        M x K activations, at L2_TO_SM_BYTES_PER_S); mma.sync time for the padded token tile (tokens,
        not M). Wider warp tiles keep more bytes in flight, but need enough row blocks (N / rows >=
        ~128) to spread over the machine; each doubling of tokens past 8 costs ~5-10% more issue
        work (ldmatrix, mma, x copies) where M fits either."""
        act_bytes = self.act.bits // 8
        weight_bytes = n * k * self.weight.bits / 8 + (k // group_size) * n * act_bytes * (2 if self.zero else 1)
        bytes_moved = weight_bytes + m * (k + n) * act_bytes
        efficiency = {16: 0.7, 32: 0.75}.get(self.rows, 0.8)
        if n // self.rows < 128:
            efficiency *= 0.8
        efficiency *= {8: 1.0, 16: 0.9, 32: 0.85}.get(self.tokens, 0.8)
        mem_s = bytes_moved / (efficiency * model.dram_bytes_per_s)
        x_s = -(-n // self.rows) * m * k * act_bytes / L2_TO_SM_BYTES_PER_S
        mma_s = 2.0 * self.tokens * n * k / model.mma_sync_flops_per_s
        return max(mem_s, x_s, mma_s) * 1e6 + model.launch_us
