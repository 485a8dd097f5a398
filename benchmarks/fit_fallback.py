"""Fit the analytical fallback's constants to a measured profile (grid search), and report how often
the fallback then picks a kernel within 15% of the best, on the profile and on an independent
re-measurement. Usage: python benchmarks/fit_fallback.py PROFILE.json [FRESH.json]"""
from __future__ import annotations

import dataclasses
import itertools
import json
import sys

from mixgemm.generator import KernelSpec
from mixgemm.generator.family import COST, CostModel


def score(doc: dict, model: CostModel, bound: float = 0.15) -> tuple[int, float]:
    """(picks within bound, sum of log-ratio losses) of the fallback on every entry of a tune file."""
    import math
    ok, loss = 0, 0.0
    for e in doc["entries"]:
        times = e["times_us"]
        specs = [KernelSpec.parse(n) for n in times]
        group = e["k"] if e["group_size"] == -1 else e["group_size"]
        pick = min(specs, key=lambda s: (s.estimate_us(e["m"], e["n"], e["k"], group, doc["sms"], model), s.name()))
        ratio = times[pick.name()] / min(times.values())
        ok += ratio <= 1 + bound
        loss += math.log(ratio)
    return ok, loss


def main() -> int:
    prof = json.load(open(sys.argv[1]))
    grid = {
        "mixed_input_efficiency": [0.5, 0.6, 0.7, 0.8],
        "sm_bandwidth_share": [1.5, 2.0, 3.0, 4.0],
        "l2_reuse": [1.0, 2.0, 4.0, 8.0],
        "tile_overhead_us": [0.0, 1.0, 2.0, 4.0],
    }
    best = None
    for values in itertools.product(*grid.values()):
        model = dataclasses.replace(COST, **dict(zip(grid, values)))
        ok, loss = score(prof, model)
        if best is None or (ok, -loss) > (best[0], -best[1]):
            best = (ok, loss, model)
    ok, loss, model = best
    print(f"fitted: {model}")
    print(f"profile: {ok}/{len(prof['entries'])} fallback picks within 15% (current defaults: "
          f"{score(prof, COST)[0]})")
    if len(sys.argv) > 2:
        fresh = json.load(open(sys.argv[2]))
        print(f"independent re-measurement: {score(fresh, model)[0]}/{len(fresh['entries'])} within 15% "
              f"(current defaults: {score(fresh, COST)[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
