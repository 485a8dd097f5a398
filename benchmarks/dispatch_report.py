"""How good are mixgemm's kernel picks? Compares, per (format, shape, M), the kernel dispatch would
take against the fastest kernel in an independent measurement.

Inputs are `mixgemm tune` outputs from the same GPU:
  --profile P   the profile dispatch uses (measured first)
  --fresh F     a second tune over the same grid: the ground truth the picks are judged on
  --unseen U    a tune over shapes that are not in the profile (nearest-shape and fallback picks)
Runs anywhere (no GPU): dispatch's own selection code is called with the kernels the files name.

    python benchmarks/dispatch_report.py --profile p.json --fresh f.json --unseen u.json --markdown out.md
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import mixgemm.dispatch as dispatch
import mixgemm.profiles as profiles
from mixgemm.generator import KernelSpec


def judge(truth: dict, profile_path: str | None, sms: int, gpu: str) -> list[dict]:
    """For each entry of `truth`: the dispatched pick (profile, else fallback) and the fallback pick,
    each as time / best time in `truth`."""
    names = sorted({n for e in truth["entries"] for n in e["times_us"]})
    built = tuple(dispatch.Built(KernelSpec.parse(n), i, KernelSpec.parse(n).capabilities()) for i, n in enumerate(names))
    dispatch.built = lambda: built  # judge with the kernels the measurement had
    dispatch.sm_count = lambda _i: sms
    dispatch.capability = lambda _i: 90
    dispatch.gpu_name = lambda _i: gpu
    rows = []
    for e in truth["entries"]:
        spec0 = KernelSpec.parse(next(iter(e["times_us"])))
        key = dispatch.DispatchKey(spec0.layout, spec0.act, spec0.weight, spec0.scale, spec0.zero, spec0.out)
        group = e["k"] if e["group_size"] == -1 else e["group_size"]
        best = min(e["times_us"].values())
        picks = {}
        for label, path in (("dispatch", profile_path), ("fallback", "")):
            os.environ["MIXGEMM_PROFILE"] = path or ""
            profiles.load_for.cache_clear()
            exp = dispatch.explain_problem(key, e["m"], e["n"], e["k"], group)
            picks[label] = (exp.choice.spec.name(), exp.choice.source, e["times_us"][exp.choice.spec.name()] / best)
        rows.append({"key": str(key), "n": e["n"], "k": e["k"], "m": e["m"], "best_us": best,
                     "best": min(e["times_us"], key=e["times_us"].get), **{f"{k}_pick": v for k, v in picks.items()}})
    return rows


def summary(rows: list[dict], label: str, bound: float) -> str:
    ratios = [r[f"{label}_pick"][2] for r in rows]
    worst = max(rows, key=lambda r: r[f"{label}_pick"][2])
    ok = sum(x <= 1 + bound for x in ratios)
    return (f"{label}: {ok}/{len(rows)} picks within {bound:.0%} of the best; median {sorted(ratios)[len(ratios) // 2]:.3f}x, "
            f"worst {max(ratios):.3f}x at {worst['key']} N={worst['n']} K={worst['k']} M={worst['m']} "
            f"(picked {worst[f'{label}_pick'][0].removeprefix('mixgemm_')}, best {worst['best'].removeprefix('mixgemm_')})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", required=True)
    p.add_argument("--fresh", required=True)
    p.add_argument("--unseen", default=None)
    p.add_argument("--markdown", default=None)
    args = p.parse_args(argv)
    prof = json.load(open(args.profile))
    lines = [f"Dispatch accuracy on {prof['gpu']} ({prof['sms']} SMs): picks judged against an independent "
             f"re-measurement of every candidate (`mixgemm tune` run twice; `benchmarks/dispatch_report.py`).", ""]
    grid = judge(json.load(open(args.fresh)), args.profile, prof["sms"], prof["gpu"])
    lines += [f"- tuning grid, with the profile — {summary(grid, 'dispatch', 0.03)}",
              f"- tuning grid, profile removed — {summary(grid, 'fallback', 0.15)}"]
    if args.unseen:
        unseen = judge(json.load(open(args.unseen)), args.profile, prof["sms"], prof["gpu"])
        lines += [f"- shapes not in the profile, as dispatched (nearest profiled shape within 25%, else the model) — "
                  f"{summary(unseen, 'dispatch', 0.15)}",
                  f"- shapes not in the profile, fallback — {summary(unseen, 'fallback', 0.15)}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        open(args.markdown, "w").write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
