"""Kernel families and the kernel description as data.

A kernel *is* its KernelSpec: ``name()`` is the C++ symbol, the generated file name, the manifest
key, the CLI filter token and the profile key, and ``KernelSpec.parse(name)`` gives the spec back.

A **family** is one way of computing the GEMM (a subclass of KernelSpec, registered with
``@register``). It owns its fields and its name grammar after the family token
(``mixgemm_<token>_<body>``), its validity predicate, its axes and default set, its template, the
packed-weight layout it reads, the compute capabilities it runs on, its shape rule and its cost
estimate. Everything else (catalogue, manifest, ``mixgemm list``, dispatch, tests) sees families
only through this interface, so adding a family, or a field to one, renames no other kernel.
"""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import ClassVar, Iterable, Optional

from .dtypes import DType, ScaleMode

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
"""templates/ beside this package: the source tree's top level, or mixgemm/templates when installed."""

KNOWN_CAPABILITIES = (80, 86, 87, 89, 90)


def capability(target: str) -> int:
    """'90a' -> 90, '80' -> 80."""
    return int(target.rstrip("a"))


def runs_on(targets: Iterable[str]) -> tuple[int, ...]:
    """Compute capabilities that machine code for `targets` runs on: sm_XY code runs on X.Z for
    Z >= Y (same major); arch-specific targets ('90a') run only on their own capability."""
    caps = set()
    for t in targets:
        c = capability(t)
        if t.endswith("a"):
            caps.add(c)
        else:
            caps |= {k for k in KNOWN_CAPABILITIES if k // 10 == c // 10 and k >= c}
    return tuple(sorted(caps))


@dataclasses.dataclass(frozen=True)
class ShapeRule:
    """What a family's kernels need of (N, K, group size). The C++ check states the same rule
    (tests/unit/test_shape_rules.py compares them through the built library)."""

    n_multiple: int
    k_multiple: int
    group_multiple: int  # group sizes other than K (per-channel) must be multiples of this
    groups: bool = True  # False: per-channel scales only (group_size == K)

    def rejection(self, n: int, k: int, group_size: int) -> Optional[str]:
        if n % self.n_multiple:
            return f"N={n} is not a multiple of {self.n_multiple}"
        if k % self.k_multiple:
            return f"K={k} is not a multiple of {self.k_multiple}"
        if not self.groups and group_size != k:
            return f"group_size={group_size}: only per-channel scales (group_size == K={k}) are served"
        if group_size != k and (group_size <= 0 or k % group_size or group_size % self.group_multiple):
            return f"group_size={group_size} must divide K={k} and be a multiple of {self.group_multiple} (or per-channel)"
        return None

    def join(self, other: "ShapeRule") -> "ShapeRule":
        """The rule a shape must meet to satisfy both."""
        return ShapeRule(math.lcm(self.n_multiple, other.n_multiple), math.lcm(self.k_multiple, other.k_multiple),
                         math.lcm(self.group_multiple, other.group_multiple), self.groups and other.groups)


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Hardware constants of the analytical dispatch estimate. Ceilings are the H100's (measured
    with `mixgemm bench`); the rest were fitted to its measured profile (benchmarks/fit_fallback.py).
    The estimates only rank kernels, so they need to be right in proportion, not exactly."""

    dram_bytes_per_s: float = 3.0e12
    bf16_flops_per_s: float = 770e12
    mma_sync_flops_per_s: float = 330e12    # mma.sync (pre-Hopper tensor-core path) on the same GPU
    mixed_input_efficiency: float = 0.8     # conversion in the mainloop costs issue slots next to wgmma
    sm_bandwidth_share: float = 1.5         # one SM can pull ~this many times its even share when others idle
    l2_reuse: float = 2.0                   # activations come from L2 after the first tile reads them
    tile_overhead_us: float = 4.0           # prologue, pipeline fill and epilogue of one tile
    launch_us: float = 3.0


COST = CostModel()

FAMILIES: dict[str, type["KernelSpec"]] = {}
_NAME = re.compile(r"mixgemm_(?P<token>[a-z][a-z0-9]*)_(?P<body>.+)")
EXAMPLE_NAME = "mixgemm_sm90_bf16xs4_g_bf16_t128x16x64_c2x1_coop"


def register(cls: type["KernelSpec"]) -> type["KernelSpec"]:
    """Class decorator: make a KernelSpec subclass a family (its `token` must be unique)."""
    if cls.token in FAMILIES and FAMILIES[cls.token] is not cls:
        raise ValueError(f"family token {cls.token!r} is taken by {FAMILIES[cls.token].__name__}")
    FAMILIES[cls.token] = cls
    return cls


def unregister(token: str) -> None:
    FAMILIES.pop(token, None)


# The type segment every family's grammar starts with: <act>x<weight>_<scale>[z]_<out>
TYPES_PATTERN = r"(?P<act>[a-z0-9]+)x(?P<weight>[a-z0-9]+)_(?P<scale>[ngc])(?P<zero>z?)_(?P<out>[a-z0-9]+)"


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """Fields every family has (the dtype key dispatch matches on); families add their own."""

    act: DType
    weight: DType
    scale: ScaleMode
    zero: bool
    out: DType

    # ---- what a family declares -----------------------------------------------------------------
    token: ClassVar[str]            # family token in the name
    title: ClassVar[str]            # one line for `mixgemm list`
    template: ClassVar[str]         # Jinja template file (in template_dir)
    template_dir: ClassVar[Path] = TEMPLATE_DIR
    layout: ClassVar[str]           # packed-weight layout tag it reads (generator/layouts.py)
    _BODY: ClassVar[re.Pattern]     # name grammar after the token

    def body(self) -> str:
        raise NotImplementedError

    @classmethod
    def from_body(cls, m: re.Match) -> "KernelSpec":
        raise NotImplementedError

    def invalid_reason(self) -> Optional[str]:
        """THE statement of this family's constraint set: None if the spec can be built and run."""
        raise NotImplementedError

    @classmethod
    def product(cls) -> Iterable["KernelSpec"]:
        """The family's axes: every spec it could describe (the predicate filters them)."""
        raise NotImplementedError

    def in_default_set(self) -> bool:
        raise NotImplementedError

    def is_smoke(self) -> bool:
        """One kernel per family is the smoke set, compiled by CI to prove the toolchain."""
        raise NotImplementedError

    def cuda_archs(self) -> tuple[str, ...]:
        """nvcc targets ('90a', '80', ...) the kernel is compiled for when every arch is wanted."""
        raise NotImplementedError

    def shape_rule(self) -> ShapeRule:
        raise NotImplementedError

    def estimate_us(self, m: int, n: int, k: int, group_size: int, sms: int, model: CostModel = COST) -> float:
        raise NotImplementedError

    def config(self) -> str:
        """The family's own fields, for `mixgemm list` (e.g. 'tile 128x16x64 cluster 2x1 coop')."""
        raise NotImplementedError

    @property
    def deterministic(self) -> bool:
        """True when results are bit-identical run to run AND a row's result does not depend on the
        batch (M) it is in, across every kernel that `deterministic=True` dispatch may pick."""
        return False

    def max_m(self) -> Optional[int]:
        """Largest M the kernel serves (None: any)."""
        return None

    @property
    def splits_k(self) -> bool:
        """True when the kernel may split K over CTAs (it takes split_k > 1 and a workspace): such
        kernels get the forward-progress tests."""
        return False

    def launch_overlap_us(self, capability: int) -> float:
        """Time a kernel of this family hides behind the previous kernel in the stream when launched
        back to back (programmatic dependent launch), which an isolated timing does not see.
        Dispatch subtracts it when ranking measured or estimated times."""
        return 0.0

    # ---- common machinery ---------------------------------------------------------------------
    def name(self) -> str:
        return f"mixgemm_{self.token}_{self.body()}"

    def types(self) -> str:
        return f"{self.act.short}x{self.weight.short}_{self.scale.value}{'z' if self.zero else ''}_{self.out.short}"

    @staticmethod
    def type_fields(m: re.Match) -> dict:
        return dict(act=DType.from_short(m["act"]), weight=DType.from_short(m["weight"]),
                    scale=ScaleMode(m["scale"]), zero=bool(m["zero"]), out=DType.from_short(m["out"]))

    @staticmethod
    def parse(name: str) -> "KernelSpec":
        """The spec of a kernel name, dispatched on its family token; ValueError if it is none."""
        m = _NAME.fullmatch(name)
        if m is None:
            raise ValueError(f"{name!r} is not a mixgemm kernel name (e.g. {EXAMPLE_NAME})")
        family = FAMILIES.get(m["token"])
        if family is None:
            raise ValueError(f"{name!r}: unknown kernel family {m['token']!r}; known: {', '.join(sorted(FAMILIES))}")
        body = family._BODY.fullmatch(m["body"])
        if body is None:
            raise ValueError(f"{name!r} does not follow the {m['token']!r} family's name grammar "
                             f"({family._BODY.pattern})")
        return family.from_body(body)

    def capabilities(self, targets: Optional[Iterable[str]] = None) -> tuple[int, ...]:
        """Compute capabilities the kernel runs on when compiled for `targets` (default: all)."""
        return runs_on(self.cuda_archs() if targets is None else targets)

    def targets(self, wanted: Optional[Iterable[str]]) -> tuple[str, ...]:
        """Which of the kernel's targets to compile for the archs a build wants (None: all). A
        wanted '86' takes the '80' target (its code runs there); a wanted '90a' takes '90' or '90a'."""
        if wanted is None:
            return self.cuda_archs()
        wanted_caps = {capability(w) for w in wanted}
        return tuple(t for t in self.cuda_archs()
                     if any(c in runs_on([t]) for c in wanted_caps))

    def shape_rejection(self, n: int, k: int, group_size: int) -> Optional[str]:
        return self.shape_rule().rejection(n, k, group_size)

    def describe_types(self) -> str:
        return f"{self.act.short} x {self.weight.short}{'+z' if self.zero else ''} -> {self.out.short}"

    def __str__(self) -> str:
        return self.name()


INT_WEIGHTS = (DType.S4, DType.U4, DType.S8, DType.U8)
"""Integer weight formats of the weight-only families: signed ones symmetric, unsigned ones with
zero points."""
FP8_WEIGHTS = (DType.E4M3, DType.E5M2)
"""8-bit float weight formats of the weight-only families (symmetric: scales, no zero points)."""
WEIGHTS = INT_WEIGHTS + FP8_WEIGHTS


def default_tier(weight: DType) -> str:
    """Which of a family's default-set tables a weight format takes: "4bit" (tuned), "8bit" (integer
    and e4m3 weights: one kernel per regime, not yet tuned) or "e5m2" (rare, e4m3 holds more
    precision: a minimal set)."""
    if weight == DType.E5M2:
        return "e5m2"
    return f"{weight.bits}bit"


def weight_only_types_reason(spec: KernelSpec, weights: tuple[DType, ...] = WEIGHTS) -> Optional[str]:
    """The type rules shared by the weight-only families (16-bit activations; 4- and 8-bit integer
    and 8-bit float weights with group scales; signed ones symmetric, unsigned ones with zero
    points; output in the activation dtype)."""
    if spec.act not in (DType.BF16, DType.F16):
        return f"activation {spec.act.short} is not supported (bf16, f16)"
    if spec.weight not in weights:
        return f"weight {spec.weight.short} is not supported ({', '.join(w.short for w in weights)})"
    if spec.out != spec.act:
        return "output dtype must equal the activation dtype"
    if spec.scale != ScaleMode.GROUP:
        return "weights need scales (group or per-channel)"
    if not spec.weight.signed and not spec.zero:
        return f"{spec.weight.short} weights need zero points (unsigned values cannot be centred otherwise)"
    if spec.weight in FP8_WEIGHTS and spec.zero:
        return f"{spec.weight.short} weights are symmetric: zero points are for unsigned integer weights"
    if spec.weight.signed and spec.zero:
        unsigned = "u" + spec.weight.short[1:]
        return f"{spec.weight.short} weights are symmetric: use {unsigned} with zero points for asymmetric quantization"
    return None
