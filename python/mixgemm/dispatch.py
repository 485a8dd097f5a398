"""Kernel selection: (dtype key) -> built candidates -> (M, N, K) -> one kernel, and why.

Order: an explicit ``kernel=`` name; else a measured profile (profiles/<gpu>.json, written by
``mixgemm tune``; see profiles.py); else an analytical roofline estimate over the candidates' tiles.
Choices are cached per (key, M, N, K, group size, device).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import torch

from . import _lib, profiles
from .generator.catalog import tile_k
from .generator.spec import DType, KernelSpec, ScaleMode
from .quant import ACT_DTYPES, LAYOUTS

@dataclasses.dataclass(frozen=True)
class FallbackModel:
    """Constants of the analytical estimate. Ceilings are the lent H100's (shared/TARGETS.md); the
    rest were fitted to its measured profile with benchmarks/fit_fallback.py. The model only has to
    rank kernels, so these need to be right in proportion, not exactly."""

    dram_bytes_per_s: float = 3.0e12
    bf16_flops_per_s: float = 770e12
    mixed_input_efficiency: float = 0.8   # conversion in the mainloop costs issue slots next to wgmma
    sm_bandwidth_share: float = 1.5       # one SM can pull ~this many times its even share when others idle
    l2_reuse: float = 2.0                 # activations come from L2 after the first tile reads them
    tile_overhead_us: float = 0.0         # prologue, pipeline fill and epilogue of one tile
    launch_us: float = 3.0


FALLBACK = FallbackModel()


@dataclasses.dataclass(frozen=True)
class DispatchKey:
    arch: int
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
        return (spec.arch, spec.act, spec.weight, spec.scale, spec.zero, spec.out) == dataclasses.astuple(self)

    def __str__(self) -> str:
        return (f"sm{self.arch} {self.act.short} x {self.weight.short} scale={self.scale.name.lower()} "
                f"zero={self.zero} out={self.out.short}")


@dataclasses.dataclass(frozen=True)
class Choice:
    spec: KernelSpec
    index: int
    source: str  # 'forced', 'profile' or 'fallback'
    estimate_us: Optional[float] = None


@dataclasses.dataclass
class Explanation:
    key: DispatchKey
    problem: tuple[int, int, int, int]  # M, N, K, group size
    candidates: list[tuple[str, Optional[float]]]
    rejected: list[tuple[str, str]]
    choice: Optional[Choice]

    def __str__(self) -> str:
        m, n, k, g = self.problem
        lines = [f"key: {self.key}", f"problem: M={m} N={n} K={k} group_size={g}"]
        lines.append(f"candidates ({len(self.candidates)}):")
        lines += [f"  {name}" + (f"  est {us:.1f} us" if us is not None else "") for name, us in self.candidates]
        if self.rejected:
            lines.append(f"rejected ({len(self.rejected)}):")
            lines += [f"  {name}: {why}" for name, why in self.rejected]
        lines.append(f"pick: {self.choice.spec.name()} ({self.choice.source})" if self.choice else "pick: none")
        return "\n".join(lines)


@functools.cache
def key(arch: int, act: torch.dtype, weight_dtype: str, zero: bool) -> DispatchKey:
    """The dispatch key of a call: a PackedWeight's arch, format and zero points, x's dtype (the
    kernels write the activation dtype)."""
    return DispatchKey(arch, ACT_DTYPES[act], DType.from_short(weight_dtype), ScaleMode.GROUP, zero, ACT_DTYPES[act])


@functools.cache
def built_specs() -> tuple[tuple[KernelSpec, int], ...]:
    return tuple((KernelSpec.parse(name), i) for i, (name, _arch) in enumerate(_lib.built_kernels()))


@functools.cache
def built_by_name() -> dict[str, tuple[KernelSpec, int]]:
    return {s.name(): (s, i) for s, i in built_specs()}


def shape_rejection(spec: KernelSpec, n: int, k: int, group_size: int) -> Optional[str]:
    """Why `spec` cannot serve the shape (mirrors the C++ check, which runs again before launch)."""
    tk = tile_k(spec.act)
    n_multiple = LAYOUTS[spec.arch].n_multiple
    if n % n_multiple:
        return f"N={n} is not a multiple of {n_multiple}"
    if k % tk:
        return f"K={k} is not a multiple of the tile k {tk}"
    if group_size != k and group_size % tk:
        return f"group_size={group_size} is neither K nor a multiple of the tile k {tk}"
    return None


def m_bucket(m: int) -> int:
    return 1 << max(0, (m - 1).bit_length())


@functools.cache
def sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count if torch.cuda.is_available() else 132


def estimate_us(spec: KernelSpec, m: int, n: int, k: int, group_size: int, sms: int,
                model: FallbackModel = FALLBACK) -> float:
    """Roofline estimate for a persistent kernel: waves of tiles, each limited by its SM's share of
    DRAM bandwidth (weights) and L2 (activations) or by tensor-core time, plus a fixed cost per tile.
    A token tile larger than M moves only M rows but still pays tensor-core time for its width."""
    tn, tm, _ = spec.tile
    tiles = math.ceil(n / tn) * math.ceil(m / tm)
    active = min(tiles, sms)
    waves = math.ceil(tiles / sms)
    act_bytes = spec.act.bits // 8
    weight_bytes = tn * k * spec.weight.bits / 8 + (k // group_size) * tn * act_bytes * (2 if spec.zero else 1)
    x_bytes = min(tm, m) * k * act_bytes
    sm_bw = min(model.dram_bytes_per_s / active, model.sm_bandwidth_share * model.dram_bytes_per_s / sms)
    sm_flops = model.bf16_flops_per_s * model.mixed_input_efficiency / sms
    tile_s = max((weight_bytes + x_bytes / model.l2_reuse) / sm_bw, 2.0 * tn * tm * k / sm_flops)
    return waves * (tile_s * 1e6 + model.tile_overhead_us) + model.launch_us


_cache: dict = {}


def choose(key: DispatchKey, m: int, n: int, k: int, group_size: int, device_index: int = 0,
           kernel: Optional[str] = None, deterministic: bool = False) -> Choice:
    """The kernel for this problem, or ValueError listing every candidate and why it was rejected."""
    if kernel:
        choice = _forced(key, n, k, group_size, kernel)
        if deterministic and not choice.spec.deterministic:
            raise ValueError(f"kernel={kernel!r} splits K and is not deterministic; drop deterministic=True")
        return choice
    # NOTE(cache): keyed by the exact M (the model estimates with it), so explain() and gemm() agree
    cache_key = (key.token, m, n, k, group_size, device_index, deterministic)
    hit = _cache.get(cache_key)
    if hit is not None:
        return hit
    exp = explain_problem(key, m, n, k, group_size, device_index, deterministic)
    if exp.choice is None:
        raise ValueError(no_kernel_message(exp))
    _cache[cache_key] = exp.choice
    return exp.choice


def _forced(key: DispatchKey, n: int, k: int, group_size: int, kernel: str) -> Choice:
    hit = _cache.get((key.token, kernel, n, k, group_size))
    if hit is not None:
        return hit
    found = built_by_name().get(kernel)
    if found is not None:
        spec, index = found
        if not key.serves(spec):
            raise ValueError(f"kernel={kernel!r} does not serve this call ({key})")
        why = shape_rejection(spec, n, k, group_size)
        if why:
            raise ValueError(f"kernel={kernel!r} cannot run this shape: {why}")
        choice = _cache[(key.token, kernel, n, k, group_size)] = Choice(spec, index, "forced")
        return choice
    try:
        KernelSpec.parse(kernel)
    except ValueError as e:
        raise ValueError(f"kernel={kernel!r}: {e}") from None
    raise ValueError(f"kernel={kernel!r} is not built in this installation; built: "
                     f"{[s.name() for s, _ in built_specs()] or 'none'} (rebuild with MIXGEMM_KERNELS=...)")


@functools.cache
def gpu_name(device_index: int) -> str:
    return torch.cuda.get_device_name(device_index) if torch.cuda.is_available() else "cpu"


def profile_group(group_size: int, k: int) -> int:
    """Group size as profiles record it: -1 for per-channel, so shapes of other K still match."""
    return -1 if group_size == k else group_size


def explain_problem(key: DispatchKey, m: int, n: int, k: int, group_size: int, device_index: int = 0,
                    deterministic: bool = False) -> Explanation:
    sms = sm_count(device_index)
    candidates, rejected = [], []
    for spec, index in built_specs():
        if not key.serves(spec):
            rejected.append((spec.name(), "serves another dtype key"))
            continue
        if deterministic and not spec.deterministic:
            rejected.append((spec.name(), "splits K (not deterministic)"))
            continue
        why = shape_rejection(spec, n, k, group_size)
        if why:
            rejected.append((spec.name(), why))
            continue
        candidates.append((spec, index, estimate_us(spec, m, n, k, group_size, sms)))
    choice = None
    prof = profiles.load_for(gpu_name(device_index), sms, frozenset(s.name() for s, _ in built_specs()))
    found = prof.lookup(str(key), profile_group(group_size, k), m_bucket(m), n, k) if prof and candidates else None
    if found:
        times, near = found
        measured = [(spec, index, times[spec.name()]) for spec, index, _ in candidates if spec.name() in times]
        if measured:
            spec, index, us = min(measured, key=lambda c: (c[2], c[0].name()))
            how = "exact" if near is None else f"nearest {near[0]}:{near[1]}"
            choice = Choice(spec, index, f"profile {how}", us)
    if choice is None and candidates:
        spec, index, us = min(candidates, key=lambda c: (c[2], c[0].name()))
        choice = Choice(spec, index, "fallback", us)
    return Explanation(key, (m, n, k, group_size), [(s.name(), us) for s, _, us in candidates], rejected, choice)


def no_kernel_message(exp: Explanation) -> str:
    m, n, k, g = exp.problem
    head = f"no built mixgemm kernel serves {exp.key} at M={m} N={n} K={k} group_size={g}"
    if not exp.rejected:
        return head + "; no kernels are built for it (rebuild with MIXGEMM_KERNELS=... or see `mixgemm list`)"
    return head + "; rejected: " + "; ".join(f"{name}: {why}" for name, why in exp.rejected)
