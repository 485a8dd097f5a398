"""Loads the compiled kernel library once; a missing build is a clear error, not an ImportError."""
from __future__ import annotations

import functools


@functools.cache
def load():
    """The pybind11 module over libmixgemm, or raise RuntimeError saying how to build it."""
    try:
        from . import _C  # noqa: PLC0415
    except ImportError as e:
        raise RuntimeError(
            f"mixgemm's kernel library is not built or failed to load ({e}). Install from source with "
            "`pip install .` (needs nvcc and CUTLASS headers; see README)") from e
    return _C


def available() -> bool:
    try:
        load()
        return True
    except RuntimeError:
        return False


@functools.cache
def built_kernels() -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(name, compute capabilities it runs on) per compiled kernel, in library index order; empty
    when nothing is built."""
    return tuple((name, tuple(caps)) for name, caps in load().kernels()) if available() else ()
