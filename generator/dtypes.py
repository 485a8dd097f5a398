"""Every dtype fact in one place, shared by the generator, packing and dispatch."""
from __future__ import annotations

import enum
from typing import Optional


class DType(enum.Enum):
    """(short name, CUTLASS type, bits, signed, torch dtype name)."""

    S4 = ("s4", "cutlass::int4b_t", 4, True, None)
    U4 = ("u4", "cutlass::uint4b_t", 4, False, None)
    S8 = ("s8", "int8_t", 8, True, "int8")
    U8 = ("u8", "uint8_t", 8, False, "uint8")
    E4M3 = ("e4m3", "cutlass::float_e4m3_t", 8, True, "float8_e4m3fn")
    E5M2 = ("e5m2", "cutlass::float_e5m2_t", 8, True, "float8_e5m2")
    F16 = ("f16", "cutlass::half_t", 16, True, "float16")
    BF16 = ("bf16", "cutlass::bfloat16_t", 16, True, "bfloat16")
    F32 = ("f32", "float", 32, True, "float32")

    def __init__(self, short: str, cutlass: str, bits: int, signed: bool, torch_name: Optional[str]):
        self.short = short
        self.cutlass = cutlass
        self.bits = bits
        self.signed = signed
        self.torch_name = torch_name

    @classmethod
    def from_short(cls, short: str) -> "DType":
        for d in cls:
            if d.short == short:
                return d
        raise ValueError(f"unknown dtype {short!r}; known: {', '.join(d.short for d in cls)}")

    @property
    def is_int(self) -> bool:
        return self.short[0] in "su"

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def __repr__(self) -> str:
        return f"DType.{self.name}"


ACTIVATIONS = (DType.BF16, DType.F16)
"""16-bit activation dtypes every weight-only kernel family serves."""

FP8_ACTIVATIONS = (DType.E4M3,)
"""8-bit float activation dtypes (quantized per token, with an [M] fp32 scale per call)."""

INT8_ACTIVATIONS = (DType.S8,)
"""8-bit integer activation dtypes (quantized per token likewise): the Ampere integer W4A8 kernels."""

ACT8 = FP8_ACTIVATIONS + INT8_ACTIVATIONS
"""Every 8-bit activation dtype: quantize_activations makes them, with per-token fp32 scales."""


class ScaleMode(enum.Enum):
    """How dequantization scales are laid out. GROUP kernels take the group size at run time and
    also serve per-channel scales (a single group of size K); CHANNEL kernels take only per-channel
    weight scales (applied in the epilogue, as with 8-bit activations and their per-token scales)."""

    NONE = "n"
    GROUP = "g"
    CHANNEL = "c"


PER_CHANNEL = -1
"""The one public spelling of per-channel scales: ``group_size=-1`` (quantize, profiles, CLI). The
kernels receive group_size == K, their C ABI's meaning of one group per output channel."""

NO_SCALE = 0
"""``quantize(w, group_size=NO_SCALE)``: convert only, no scale (the weights are already integers in
the format's range, or values an 8-bit float holds). Stored as per-channel scales of 1.0 (2 bytes
per output feature), which every kernel multiplies by exactly."""

DEFAULT_GROUP_SIZE = 128
DEFAULT_WEIGHT_DTYPE = "s4"
