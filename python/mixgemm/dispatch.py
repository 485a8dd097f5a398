"""Kernel selection: (dtype key) -> built candidates on this GPU -> (M, N, K) -> one kernel, and why.

Candidates are the built kernels of every family that reads the weight's layout, serves the dtype
key and runs on the GPU's compute capability. Order: an explicit ``kernel=`` name; else a measured
profile (profiles/<gpu>.json, written by ``mixgemm tune``; see profiles.py); else a choice measured
in this process on first use (``autotune``, see ops.py; shapes no profile covers); else each
family's analytical estimate. Choices are cached per (key, M, N, K, group size, device).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import warnings
from typing import Optional

import torch

from . import _lib, profiles
from .generator.dtypes import DType, PER_CHANNEL, ScaleMode
from .generator.family import COST, CostModel, KernelSpec
from .generator.layouts import PER_CHANNEL_LAYOUTS
from .quant import ACT8_DTYPES, ACT_DTYPES


@dataclasses.dataclass(frozen=True)
class DispatchKey:
    layout: str
    act: DType
    weight: DType
    scale: ScaleMode
    zero: bool
    out: DType

    @functools.cached_property
    def token(self) -> str:
        """Cheap to hash (the dataclass hash walks Enum fields in Python on every call)."""
        return str(self)

    def serves(self, spec: KernelSpec) -> bool:
        return (spec.layout, spec.act, spec.weight, spec.scale, spec.zero, spec.out) == dataclasses.astuple(self)

    def __str__(self) -> str:
        return (f"{self.layout} {self.act.short} x {self.weight.short} scale={self.scale.name.lower()} "
                f"zero={self.zero} out={self.out.short}")


@dataclasses.dataclass(frozen=True)
class Choice:
    spec: KernelSpec
    index: int
    source: str  # 'forced', 'profile exact', 'profile nearest N:K', 'autotuned on first use' or 'fallback'
    estimate_us: Optional[float] = None

    @property
    def tentative(self) -> bool:
        """Not measured on this shape (a model estimate or a nearby shape's profile): the first
        eager call times the candidates (ops.autotune)."""
        return self.source == "fallback" or self.source.startswith("profile nearest")


@dataclasses.dataclass
class Explanation:
    key: DispatchKey
    problem: tuple[int, int, int, int]  # M, N, K, group size
    capability: int
    candidates: list[tuple[str, Optional[float]]]
    rejected: list[tuple[str, str]]
    choice: Optional[Choice]
    prior: list[str] = dataclasses.field(default_factory=list)  # a nearby profiled shape's ranking, best first

    def __str__(self) -> str:
        m, n, k, g = self.problem
        lines = [f"key: {self.key}", f"problem: M={m} N={n} K={k} group_size={g} on sm{self.capability}"]
        lines.append(f"candidates ({len(self.candidates)}):")
        lines += [f"  {name}" + (f"  est {us:.1f} us" if us is not None else "") for name, us in self.candidates]
        if self.rejected:
            lines.append(f"rejected ({len(self.rejected)}):")
            lines += [f"  {name}: {why}" for name, why in self.rejected]
        lines.append(f"pick: {self.choice.spec.name()} ({self.choice.source})" if self.choice else "pick: none")
        return "\n".join(lines)


@functools.cache
def key(layout: str, act: torch.dtype, weight_dtype: str, zero: bool, out: Optional[torch.dtype] = None) -> DispatchKey:
    """The dispatch key of a call: the PackedWeight's layout, format and zero points, x's dtype and
    the output dtype (default: x's; 16-bit activations write their own dtype). 16-bit activations
    take group-scale kernels (which also serve per-channel scales), as do W4A8 weights; 8-bit float
    weights with 8-bit float activations the per-channel ones (scales applied in the epilogue with
    the per-token ones)."""
    act_d = ACT8_DTYPES[act] if act in ACT8_DTYPES else ACT_DTYPES[act]
    out_d = ACT_DTYPES[out] if out is not None else act_d
    scale = ScaleMode.CHANNEL if layout in PER_CHANNEL_LAYOUTS else ScaleMode.GROUP
    return DispatchKey(layout, act_d, DType.from_short(weight_dtype), scale, zero, out_d)


@dataclasses.dataclass(frozen=True)
class Built:
    spec: KernelSpec
    index: int
    capabilities: tuple[int, ...]


@functools.cache
def built() -> tuple[Built, ...]:
    """The kernels of this installation that this mixgemm's families describe. A kernel whose name
    no registered family parses (a library newer than the Python package, or a hand-added kernel)
    is skipped with one warning instead of breaking every call."""
    out, unknown = [], []
    for index, (name, caps) in enumerate(_lib.built_kernels()):
        try:
            out.append(Built(KernelSpec.parse(name), index, tuple(caps)))
        except ValueError as e:
            unknown.append(str(e))
    if unknown:
        warnings.warn(f"{len(unknown)} built kernel(s) are unknown to this mixgemm and are not dispatched to: "
                      f"{unknown[0]}", stacklevel=2)
    return tuple(out)


@functools.cache
def built_by_name() -> dict[str, Built]:
    return {b.spec.name(): b for b in built()}


def problem_rejection(spec: KernelSpec, m: int, n: int, k: int, group_size: int) -> Optional[str]:
    """Why `spec` cannot serve the problem: the family's shape rule (stated again by its C++ check,
    which runs before launch) and its M limit."""
    why = spec.shape_rejection(n, k, group_size)
    if why:
        return why
    limit = spec.max_m()
    if limit is not None and m > limit:
        return f"M={m} > {limit}, the most this kernel serves"
    return None


def m_bucket(m: int) -> int:
    return 1 << max(0, (m - 1).bit_length())


@functools.cache
def sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count if torch.cuda.is_available() else 132


@functools.cache
def _device_capability(device_index: int) -> int:
    if not torch.cuda.is_available():
        return 0
    major, minor = torch.cuda.get_device_capability(device_index)
    return 10 * major + minor


_capability_override: dict[int, int] = {}


def capability(device_index: int) -> int:
    """The compute capability dispatch chooses for: the device's, or the one `dispatch_as` set."""
    return _capability_override.get(device_index, _device_capability(device_index))


@contextlib.contextmanager
def dispatch_as(arch: int, device_index: int = 0):
    """Within the block, dispatch on device `device_index` picks kernels as on a GPU of compute
    capability `arch` (e.g. 86): only kernels built to run there are candidates (they must run on this
    GPU too: sm_80 code runs on an H100 through its sm_90 build). For timing the Ampere path on a
    Hopper GPU (`mixgemm bench --dispatch-arch 86`); choices made inside are forgotten on exit."""
    if not isinstance(arch, int) or arch < 10:
        raise ValueError(f"arch={arch!r} must be a compute capability such as 80 or 86")
    previous = _capability_override.get(device_index)
    _capability_override[device_index] = arch
    _cache.clear()
    _autotuned.clear()
    try:
        yield
    finally:
        if previous is None:
            _capability_override.pop(device_index, None)
        else:
            _capability_override[device_index] = previous
        _cache.clear()
        _autotuned.clear()


_cache: dict = {}
# (key token, profile group, M bucket, N, K, device, deterministic) -> (kernel name, measured us):
# choices timed in this process for problems no profile covers (ops.autotune fills it).
_autotuned: dict[tuple, tuple[str, float]] = {}


def autotune_key(key: DispatchKey, m: int, n: int, k: int, group_size: int, device_index: int,
                 deterministic: bool) -> tuple:
    return (key.token, profile_group(group_size, k), m_bucket(m), n, k, device_index, deterministic)


# NOTE(autotune): candidates within this factor of the best estimate are timed, at most this many,
# plus each family's best estimate (so a family the model misjudges on a shape is still measured).
# Each is timed in AUTOTUNE_ROUNDS interleaved rounds; the best median counts (ops.autotune). Where a
# nearby profiled shape stands in, its AUTOTUNE_PRIOR best kernels are timed too.
AUTOTUNE_SPREAD, AUTOTUNE_MAX, AUTOTUNE_ROUNDS, AUTOTUNE_PRIOR = 3.0, 6, 3, 3


def autotune_candidates(candidates: list[tuple[str, Optional[float]]], family_of: dict[str, str]) -> list[str]:
    """The kernels first-use autotuning times, from explain's (name, estimate) candidates."""
    ranked = sorted((us, name) for name, us in candidates if us is not None)
    if not ranked:
        return []
    picked = [name for us, name in ranked if us <= AUTOTUNE_SPREAD * ranked[0][0]][:AUTOTUNE_MAX]
    best_of_family: dict[str, str] = {}
    for _, name in ranked:
        best_of_family.setdefault(family_of[name], name)
    return picked + [name for name in best_of_family.values() if name not in picked]


def rank_key(spec, us: float, capability: int) -> tuple[float, str]:
    """How candidates are ordered (profile, autotune, estimate alike): measured or estimated time,
    less what programmatic dependent launch hides under the previous kernel; ties by name."""
    return us - spec.launch_overlap_us(capability), spec.name()


def record_autotuned(akey: tuple, name: str, us: float) -> None:
    """Remember a measured choice. Cached choices are dropped (a rare event: once per shape and M
    bucket), so those it supersedes are made again."""
    _autotuned[akey] = (name, us)
    _cache.clear()


def choose(key: DispatchKey, m: int, n: int, k: int, group_size: int, device_index: int = 0,
           kernel: Optional[str] = None, deterministic: bool = False) -> Choice:
    """The kernel for this problem, or ValueError listing every candidate and why it was rejected."""
    if kernel:
        return _forced(key, m, n, k, group_size, device_index, kernel, deterministic)
    # NOTE(cache): keyed by the exact M (the estimates use it), so explain() and gemm() agree
    cache_key = (key.token, m, n, k, group_size, device_index, deterministic)
    hit = _cache.get(cache_key)
    if hit is not None:
        return hit
    exp = explain_problem(key, m, n, k, group_size, device_index, deterministic)
    if exp.choice is None:
        raise ValueError(no_kernel_message(exp))
    _cache[cache_key] = exp.choice
    return exp.choice


def _forced(key: DispatchKey, m: int, n: int, k: int, group_size: int, device_index: int, kernel: str,
            deterministic: bool) -> Choice:
    cache_key = (key.token, kernel, m, n, k, group_size, device_index, deterministic)
    hit = _cache.get(cache_key)
    if hit is not None:
        return hit
    found = built_by_name().get(kernel)
    if found is None:
        try:
            KernelSpec.parse(kernel)
        except ValueError as e:
            raise ValueError(f"kernel={kernel!r}: {e}") from None
        raise ValueError(f"kernel={kernel!r} is not built in this installation; built: "
                         f"{[b.spec.name() for b in built()] or 'none'} (rebuild with MIXGEMM_KERNELS=...)")
    if not key.serves(found.spec):
        spec = found.spec
        if spec.layout != key.layout:
            raise ValueError(f"kernel={kernel!r} reads weights in layout {spec.layout}, but this PackedWeight is in "
                             f"layout {key.layout}: repack it with pw.to_layout({spec.layout!r}) (or quantize with "
                             f"layout={spec.layout!r})")
        raise ValueError(f"kernel={kernel!r} ({spec.describe_types()}, scale={spec.scale.name.lower()}, "
                         f"zero={spec.zero}) does not serve this call ({key})")
    if deterministic and not found.spec.deterministic:
        raise ValueError(f"kernel={kernel!r} is not deterministic across batch sizes; drop deterministic=True")
    why = problem_rejection(found.spec, m, n, k, group_size)
    if why:
        raise ValueError(f"kernel={kernel!r} cannot run this problem: {why}")
    cap = _device_capability(device_index)  # forced: the kernel must run on the GPU in front of us
    if cap and cap not in found.capabilities:
        raise ValueError(f"kernel={kernel!r} runs on sm{', sm'.join(map(str, found.capabilities))}, "
                         f"not on this sm{cap} GPU")
    choice = _cache[cache_key] = Choice(found.spec, found.index, "forced")
    return choice


@functools.cache
def gpu_name(device_index: int) -> str:
    return torch.cuda.get_device_name(device_index) if torch.cuda.is_available() else "cpu"


def profile_group(group_size: int, k: int) -> int:
    """Group size as profiles record it (per-channel is PER_CHANNEL), so shapes of other K match."""
    return PER_CHANNEL if group_size == k else group_size


OTHER_KEY = "serves another dtype key or layout"


def explain_problem(key: DispatchKey, m: int, n: int, k: int, group_size: int, device_index: int = 0,
                    deterministic: bool = False, cap: Optional[int] = None, sms: Optional[int] = None,
                    model: CostModel = COST) -> Explanation:
    sms = sm_count(device_index) if sms is None else sms
    cap = capability(device_index) if cap is None else cap
    # dispatch_as: choose among the kernels of families that run on `cap`, timed with the code built
    # for the GPU in front of us (an sm_80 family's sm_90 build on an H100)
    native = _device_capability(device_index)
    emulated = _capability_override.get(device_index) == cap and cap != native
    candidates, rejected = [], []
    for b in built():
        spec = b.spec
        if not key.serves(spec):
            rejected.append((spec.name(), OTHER_KEY))
        elif cap not in (spec.capabilities() if emulated else b.capabilities):
            runs = spec.capabilities() if emulated else b.capabilities
            rejected.append((spec.name(), f"runs on sm{', sm'.join(map(str, runs))}, not sm{cap}"))
        elif emulated and native not in b.capabilities:
            rejected.append((spec.name(), f"built without code for this sm{native} GPU"))
        elif deterministic and not spec.deterministic:
            rejected.append((spec.name(), "not deterministic across batch sizes"))
        elif why := problem_rejection(spec, m, n, k, group_size):
            rejected.append((spec.name(), why))
        else:
            candidates.append((spec, b.index, spec.estimate_us(m, n, k, group_size, sms, model)))
    choice, prior = None, []

    def rank(c):
        return rank_key(c[0], c[2], cap)

    prof = profiles.load_for(gpu_name(device_index), sms, frozenset(b.spec.name() for b in built())) if candidates else None
    found = prof.lookup(str(key), profile_group(group_size, k), m_bucket(m), n, k) if prof else None
    if found and found[1] is None:
        measured = [(spec, index, found[0][spec.name()]) for spec, index, _ in candidates if spec.name() in found[0]]
        if measured:
            spec, index, us = min(measured, key=rank)
            choice = Choice(spec, index, "profile exact", us)
    if choice is None and candidates:
        # NOTE(transfer order): a first-use measurement on this very shape outranks a nearby shape's
        tuned = _autotuned.get(autotune_key(key, m, n, k, group_size, device_index, deterministic))
        if tuned is not None:
            for spec, index, _ in candidates:
                if spec.name() == tuned[0]:
                    choice = Choice(spec, index, "autotuned on first use", tuned[1])
    if choice is None and found:
        times, near = found
        # NOTE(transfer): a measured shape stands in for this one scaled by the family's predicted
        # change between the two (wave quantization differs: on the H100, 4096x14336 prefers the
        # 128x16 tile at M=64, 5120x13824 the 128x64 one, 1.58x apart). The pick is a prior only:
        # the first eager call times it against the model's candidates (ops.autotune), since the
        # transfer can cross families wrongly (4608x3584 at M=64 took the 4096x4096 decode pick,
        # 28.1 us, where a CUTLASS 128x64 stream-K tile ran 20.6).
        measured = [(spec, index, times[spec.name()] * spec.estimate_us(m, n, k, group_size, sms, model)
                     / spec.estimate_us(m, near[0], near[1], group_size, sms, model))
                    for spec, index, _ in candidates if spec.name() in times]
        if measured:
            measured.sort(key=rank)
            prior = [spec.name() for spec, _, _ in measured]
            spec, index, us = measured[0]
            choice = Choice(spec, index, f"profile nearest {near[0]}:{near[1]}", us)
    if choice is None and candidates:
        spec, index, us = min(candidates, key=rank)
        choice = Choice(spec, index, "fallback", us)
    return Explanation(key, (m, n, k, group_size), cap, [(s.name(), us) for s, _, us in candidates], rejected, choice,
                       prior)


def no_kernel_message(exp: Explanation) -> str:
    m, n, k, g = exp.problem
    head = f"no built mixgemm kernel serves {exp.key} at M={m} N={n} K={k} group_size={g} on sm{exp.capability}"
    if not exp.rejected:
        return head + "; no kernels are built for it (rebuild with MIXGEMM_KERNELS=... or see `mixgemm list`)"
    other = [name for name, why in exp.rejected if why == OTHER_KEY]
    rest = [f"{name}: {why}" for name, why in exp.rejected if why != OTHER_KEY]
    if other:
        rest.append(f"{len(other)} kernel(s) serve other dtype keys or layouts (`mixgemm list` shows each one's types)")
    return head + "; rejected: " + "; ".join(rest)
