"""Summarize a `mixgemm bench --json` file: a per-point table and one line per M (share of the w4
roofline, large and small layers, time over cuBLAS, which peers were faster).

    python3 benchmarks/summarize.py bench.json [--title "..."] [--large-mb 50]

Large layers are those of at least --large-mb MB of packed weights (the bars of issue 8: 80% at
M <= 16 on layers of 50 MB and more). Graph columns appear when the bench ran with --graph.
"""
from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def pct_range(xs):
    return f"{min(xs):.0%}-{max(xs):.0%}" if xs else "-"


def summarize(doc: dict, large_bytes: float) -> list[str]:
    rows = doc["rows"]
    graph = any("mixgemm_graph_us" in r for r in rows)
    peers = [p for p in ("tinygemm", "fbgemm", "gemlite") if any(f"{p}_us" in r for r in rows)]
    head = f"{'shape':<22}{'M':>6}{'mix':>9}{'%roof':>7}"
    if graph:
        head += f"{'graph':>9}{'%roofG':>7}"
    head += f"{'cuBLAS':>9}{'x':>7}" + "".join(f"{p[:8]:>9}" for p in peers) + " kernel"
    out = [head]
    by_m = defaultdict(list)
    for r in rows:
        line = f"{r['shape']:<22}{r['m']:>6}{r['mixgemm_us']:>9.1f}{r['roofline_us'] / r['mixgemm_us']:>7.0%}"
        if graph:
            g = r.get("mixgemm_graph_us")
            line += f"{g:>9.1f}{r['roofline_us'] / g:>7.0%}" if g else f"{'-':>9}{'-':>7}"
        line += f"{r['cublas_us']:>9.1f}{r['cublas_us'] / r['mixgemm_us']:>6.2f}x"
        line += "".join(f"{r[p + '_us']:>9.1f}" if r.get(p + "_us") else f"{'-':>9}" for p in peers)
        out.append(line + " " + r["kernel"].removeprefix("mixgemm_"))
        by_m[r["m"]].append(r)
    for m, rs in sorted(by_m.items()):
        large = [r for r in rs if r["weight_bytes"] >= large_bytes]
        small = [r for r in rs if r["weight_bytes"] < large_bytes]
        roof = lambda r, key="mixgemm_us": r["roofline_us"] / r[key]
        ratio = [r["mixgemm_us"] / r["cublas_us"] for r in rs]
        s = (f"M={m}: geomean {geomean([roof(r) for r in rs]):.0%} of the roofline at the weight width (eager, L2 flushed); "
             f"large layers {pct_range([roof(r) for r in large])}")
        if graph and large and all(r.get("mixgemm_graph_us") for r in large):
            s += f" (graph, back to back: {pct_range([roof(r, 'mixgemm_graph_us') for r in large])})"
        s += f"; small {pct_range([roof(r) for r in small])}"
        worst = max(rs, key=lambda r: r["mixgemm_us"] / r["cublas_us"])
        s += f"; time/cuBLAS geomean {geomean(ratio):.3f}, worst {max(ratio):.3f} ({worst['shape']})"
        slower_cublas = [(r["shape"], round(r["cublas_us"] / r["mixgemm_us"], 2)) for r in rs
                         if r["cublas_us"] < r["mixgemm_us"]]
        if slower_cublas:
            s += f"; slower than cuBLAS on {len(slower_cublas)} {slower_cublas}"
        for p in peers:
            slower = [(r["shape"], round(r[p + "_us"] / r["mixgemm_us"], 2)) for r in rs
                      if r.get(p + "_us") and r[p + "_us"] < r["mixgemm_us"]]
            s += f"; slower than {p} on {len(slower)} of {len(rs)}" + (f" {slower}" if slower else "")
        out.append(s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json")
    ap.add_argument("--title", default=None)
    ap.add_argument("--large-mb", type=float, default=50.0)
    a = ap.parse_args()
    doc = json.load(open(a.json))
    if a.title:
        print(a.title)
    print("\n".join(summarize(doc, a.large_mb * 1e6)))


if __name__ == "__main__":
    main()
