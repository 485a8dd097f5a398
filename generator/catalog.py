"""The catalogue: the union over families of filter(is_valid, family.product()), and selection.

Each family's ``invalid_reason`` is THE single statement of its constraint set; ``is_valid`` and
every caller go through it.
"""
from __future__ import annotations

import functools
from typing import Iterable, Optional

from . import families  # noqa: F401  (registers the built-in families)
from .family import FAMILIES, KernelSpec, capability


def invalid_reason(spec: KernelSpec) -> Optional[str]:
    return spec.invalid_reason()


def is_valid(spec: KernelSpec) -> bool:
    return spec.invalid_reason() is None


def product_of_axes() -> list[KernelSpec]:
    return [s for family in FAMILIES.values() for s in family.product()]


def catalog() -> list[KernelSpec]:
    """Every valid kernel of every registered family, sorted by name."""
    return list(_catalog(tuple(FAMILIES.values())))


@functools.cache
def _catalog(families: tuple) -> tuple[KernelSpec, ...]:
    # NOTE(cache): keyed by the registered families, so registering one (tests do) refreshes it
    return tuple(sorted(filter(is_valid, (s for f in families for s in f.product())), key=KernelSpec.name))


def default_kernels() -> list[KernelSpec]:
    """The kernels built when no filter is given (and committed under kernels_generated/)."""
    return [s for s in catalog() if s.in_default_set()]


def smoke_kernels() -> list[KernelSpec]:
    return [s for s in catalog() if s.is_smoke()]


def _matches(token: str, name: str) -> bool:
    return all(part in name for part in token.split("+"))


def select(filter_expr: Optional[str], archs: Optional[Iterable[str]] = None) -> list[KernelSpec]:
    """Kernels matching a filter: None/'' or 'default' -> the default set, 'all' -> the catalogue,
    'smoke' -> one kernel per family (what CI compiles), 'none', else a comma-separated list of tokens; a
    kernel matches when its name contains every '+'-joined part of some token (e.g. 'bf16xs4+t128x16'
    or a full name); 'default:TOKENS' matches the tokens within the default set only (e.g.
    'default:xs4,xu4': the default 4-bit kernels). With `archs` (nvcc targets such as '90a', '80'),
    only kernels that have code for one of them."""
    if not filter_expr or filter_expr == "default":
        specs = default_kernels()
    elif filter_expr == "all":
        specs = catalog()
    elif filter_expr == "smoke":
        specs = smoke_kernels()
    elif filter_expr == "none":
        specs = []
    else:
        pool = catalog()
        if filter_expr.startswith("default:"):
            filter_expr, pool = filter_expr[len("default:"):], default_kernels()
        tokens = [t.strip() for t in filter_expr.split(",") if t.strip()]
        specs = [s for s in pool if any(_matches(t, s.name()) for t in tokens)]
        unmatched = [t for t in tokens if not any(_matches(t, s.name()) for s in pool)]
        if unmatched:
            where = "the default set" if len(pool) < len(catalog()) else "the catalogue"
            raise ValueError(f"kernel filter token(s) {unmatched} match no kernel in {where} "
                             f"(see `mixgemm list --all`)")
    if archs is not None:
        archs = list(archs)
        specs = [s for s in specs if s.targets(archs)]
    return specs


def known_targets() -> list[str]:
    """Every nvcc target some family compiles for, e.g. ['80', '90', '90a']."""
    return sorted({t for s in catalog() for t in s.cuda_archs()}, key=lambda t: (capability(t), t))
