"""Kernel description as data.

A kernel *is* its KernelSpec: ``name()`` is the C++ symbol, the generated file name, the manifest
key, the CLI filter token and the profile key, and ``KernelSpec.parse(name)`` gives the spec back.
Nothing else in mixgemm builds or takes apart kernel names.
"""
from __future__ import annotations

import dataclasses
import enum
import re
from typing import Optional


class DType(enum.Enum):
    """Every dtype fact in one place: (short name, CUTLASS type, bits, signed, torch dtype name)."""

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


class ScaleMode(enum.Enum):
    """How dequantization scales are laid out. GROUP kernels take the group size at run time and
    also serve per-channel scales (a single group of size K)."""

    NONE = "n"
    GROUP = "g"


class Schedule(enum.Enum):
    COOPERATIVE = ("coop", "Cooperative")
    PINGPONG = ("pp", "Pingpong")

    def __init__(self, short: str, cpp: str):
        self.short = short
        self.cpp = cpp


@dataclasses.dataclass(frozen=True, order=True)
class KernelSpec:
    """One kernel. Tile and cluster are in the kernel's own (swapped) orientation:
    tile = (weight rows N, tokens M, K), cluster = (along N, along M)."""

    arch: int
    act: DType
    weight: DType
    scale: ScaleMode
    zero: bool
    out: DType
    tile: tuple[int, int, int]
    cluster: tuple[int, int]
    schedule: Schedule

    def name(self) -> str:
        tn, tm, tk = self.tile
        cn, cm = self.cluster
        return (
            f"mixgemm_sm{self.arch}_{self.act.short}x{self.weight.short}_{self.scale.value}"
            f"{'z' if self.zero else ''}_{self.out.short}_t{tn}x{tm}x{tk}_c{cn}x{cm}_{self.schedule.short}"
        )

    _PATTERN = re.compile(
        r"mixgemm_sm(?P<arch>\d+)_(?P<act>[a-z0-9]+)x(?P<weight>[a-z0-9]+)_(?P<scale>[ng])(?P<zero>z?)"
        r"_(?P<out>[a-z0-9]+)_t(?P<tn>\d+)x(?P<tm>\d+)x(?P<tk>\d+)_c(?P<cn>\d+)x(?P<cm>\d+)_(?P<sched>[a-z]+)"
    )

    @classmethod
    def parse(cls, name: str) -> "KernelSpec":
        m = cls._PATTERN.fullmatch(name)
        if m is None:
            raise ValueError(f"{name!r} is not a mixgemm kernel name (e.g. {EXAMPLE_NAME})")
        schedules = {s.short: s for s in Schedule}
        if m["sched"] not in schedules:
            raise ValueError(f"unknown schedule {m['sched']!r} in {name!r}; known: {', '.join(schedules)}")
        return cls(
            arch=int(m["arch"]),
            act=DType.from_short(m["act"]),
            weight=DType.from_short(m["weight"]),
            scale=ScaleMode(m["scale"]),
            zero=bool(m["zero"]),
            out=DType.from_short(m["out"]),
            tile=(int(m["tn"]), int(m["tm"]), int(m["tk"])),
            cluster=(int(m["cn"]), int(m["cm"])),
            schedule=schedules[m["sched"]],
        )

    @property
    def deterministic(self) -> bool:
        """True when every output is reduced over K by one CTA in a fixed order (no split-K or
        stream-K), so results are bit-identical run to run and independent of the batch size."""
        return self.schedule in (Schedule.COOPERATIVE, Schedule.PINGPONG)

    @property
    def weight_layout(self) -> str:
        """Tag of the packed-weight layout this kernel reads (see python/mixgemm/quant.py)."""
        return weight_layout_tag(self.arch, self.weight, self.act)

    def __str__(self) -> str:
        return self.name()


def weight_layout_tag(arch: int, weight: DType, act: DType) -> str:
    """The one definition of packed-weight layout tags, shared by kernels and packing."""
    return f"sm{arch}_w{weight.bits}_mma{act.bits}_shuffled"


EXAMPLE_NAME = "mixgemm_sm90_bf16xs4_g_bf16_t128x16x64_c2x1_coop"
