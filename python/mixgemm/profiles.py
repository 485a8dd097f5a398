"""Measured per-GPU profiles: which kernel is fastest for (key, N, K, group size, M bucket).

A profile is JSON written by ``mixgemm tune``:
    {"version": 1, "gpu": "NVIDIA H100 80GB HBM3", "sms": 132, "kernels": [names measured],
     "entries": [{"key": "<DispatchKey>", "n": N, "k": K, "group_size": G, "m": M bucket,
                  "times_us": {kernel name: median us, ...}}, ...]}
Lookups use the exact (N, K) and M bucket, else the nearest measured (N, K) for the same key and
M bucket (log distance) if it is within 25% in both N and K (dispatch then scales its times by the
families' predicted change between the two shapes); else dispatch falls back to its model. Kernels a profile names that are not built are skipped with a warning.
"""
from __future__ import annotations

import functools
import json
import math
import os
import warnings
from pathlib import Path
from typing import Optional

PROFILE_VERSION = 1
# NOTE(nearest): a measured shape stands in for another only within 25% in N and in K. Further
# away, tile counts per SM (wave quantization) differ and the fitted analytical model picks better:
# on the H100, 6 unseen Llama/Qwen/Phi shapes x 10 M, the nearest shape missed the best kernel by
# up to 2.2x while the model stayed within 12% (benchmarks/results/h100_dispatch_accuracy.md).
NEAREST_LOG_RATIO = math.log(1.25)
PROFILE_DIRS = [Path(__file__).resolve().parent / "profiles"]


def profile_name(gpu: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia_h100_80gb_hbm3' (the file stem under profiles/)."""
    return "".join(c if c.isalnum() else "_" for c in gpu.lower()).strip("_")


class Profile:
    def __init__(self, doc: dict, source: str, built: set[str]):
        if not isinstance(doc, dict) or doc.get("version") != PROFILE_VERSION:
            raise ValueError(f"profile {source}: version {doc.get('version') if isinstance(doc, dict) else doc!r} "
                             f"is not {PROFILE_VERSION}; re-run `mixgemm tune`")
        self.source = source
        self.gpu, self.sms = doc.get("gpu"), doc.get("sms")
        self.table: dict[tuple, dict[str, float]] = {}
        self.shapes: dict[tuple, list[tuple[int, int]]] = {}
        missing = set()
        for e in doc.get("entries", []):
            try:
                times = {name: float(t) for name, t in e["times_us"].items() if t is not None}
                key = (e["key"], int(e["group_size"]), int(e["m"]))
                shape = (int(e["n"]), int(e["k"]))
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise ValueError(f"profile {source}: malformed entry {e!r} ({err}); re-run `mixgemm tune`") from None
            missing |= set(times) - built
            times = {n: t for n, t in times.items() if n in built and math.isfinite(t)}
            if times:
                self.table[key + shape] = times
                self.shapes.setdefault(key, []).append(shape)
        if missing:
            warnings.warn(f"profile {source} names {len(missing)} kernel(s) that are not built here; ignoring them "
                          f"(e.g. {sorted(missing)[0]})", stacklevel=3)

    def lookup(self, key: str, group_size: int, m_bucket: int, n: int, k: int
               ) -> Optional[tuple[dict, Optional[tuple[int, int]]]]:
        """(times by kernel, None for an exact match or the nearest measured (N, K)), or None."""
        base = (key, group_size, m_bucket)
        if base + (n, k) in self.table:
            return self.table[base + (n, k)], None
        shapes = self.shapes.get(base)
        if not shapes:
            return None
        near = min(shapes, key=lambda s: (math.log(s[0] / n) ** 2 + math.log(s[1] / k) ** 2, s))
        if max(abs(math.log(near[0] / n)), abs(math.log(near[1] / k))) > NEAREST_LOG_RATIO:
            return None
        return self.table[base + near], near


@functools.cache
def load_for(gpu: str, sms: int, built: frozenset) -> Optional[Profile]:
    """The profile for this GPU: $MIXGEMM_PROFILE if set ('' disables), else profiles/<gpu>.json."""
    env = os.environ.get("MIXGEMM_PROFILE")
    if env is not None:
        paths = [Path(env)] if env else []
    else:
        paths = [d / f"{profile_name(gpu)}.json" for d in PROFILE_DIRS]
    for path in paths:
        if path.exists():
            try:
                doc = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"profile {path} is not valid JSON ({e}); delete it or re-run `mixgemm tune`, "
                                 f"or set MIXGEMM_PROFILE='' to dispatch without it") from None
            prof = Profile(doc, str(path), set(built))
            if prof.gpu != gpu or prof.sms != sms:
                warnings.warn(f"profile {path} was measured on {prof.gpu} ({prof.sms} SMs), not {gpu} ({sms} SMs); "
                              f"ignoring it", stacklevel=3)
                continue
            return prof
    return None
