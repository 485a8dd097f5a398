"""``mixgemm tune``: time every built candidate per shape and M bucket and write a profile.

Method as in bench.py (CUDA events, L2 flushed, warm-up, median); kernels are launched directly,
so the profile ranks kernels, not Python overhead.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import torch

from . import dispatch
from .bench import SHAPE_SETS, SHAPES, bench_us, gpu_info
from .ops import launch, quantize_activations
from .packed import choose_layout, quantize
from .generator.dtypes import ACTIVATIONS, DEFAULT_GROUP_SIZE, PER_CHANNEL
from .generator.layouts import PER_CHANNEL_LAYOUTS
from .quant import ACT8_DTYPES, FORMATS, torch_dtype
from .profiles import PROFILE_VERSION, profile_name

DEFAULT_M = tuple(1 << i for i in range(14))  # 1 .. 8192: the M buckets dispatch uses


def parse_shapes(text: str) -> list[tuple[str, int, int]]:
    out = []
    for tok in text.split(","):
        for name in SHAPE_SETS.get(tok, [tok]):
            if name in SHAPES:
                out.append((name, *SHAPES[name]))
            else:
                try:
                    n, k = (int(v) for v in name.split(":"))
                except ValueError:
                    raise ValueError(f"--shapes: {name!r} is not a shape name ({', '.join(SHAPES)}), a set "
                                     f"({', '.join(SHAPE_SETS)}) or N:K") from None
                out.append((name, n, k))
    return out


def time_candidates(candidates: dict, passes: int, rep_ms: float) -> dict[str, float]:
    """Median time of each candidate, measured in `passes` interleaved rounds; the best round counts.
    NOTE(noise): single measurements on the H100 showed 2x outliers (clock or neighbour effects)."""
    best: dict[str, float] = {}
    for _ in range(passes):
        for name, fn in candidates.items():
            t = bench_us(fn, warmup_ms=5, rep_ms=rep_ms)
            best[name] = min(best.get(name, t), t)
    return {name: round(t, 2) for name, t in best.items()}


def parse_ms(text: str) -> list[int]:
    """'1,16,64' or a geometric run '1,2,4,...,8192' -> the list of M values."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if "..." not in parts:
        return [int(p) for p in parts]
    i = parts.index("...")
    if i < 2 or i != len(parts) - 2:
        raise ValueError(f"--m {text!r}: write a run as 'a,b,...,last' (geometric, ratio b/a)")
    head, last = [int(p) for p in parts[:i]], int(parts[-1])
    ratio = head[-1] / head[-2]
    if ratio <= 1:
        raise ValueError(f"--m {text!r}: a run needs an increasing ratio")
    out = head
    while out[-1] * ratio <= last:
        out.append(round(out[-1] * ratio))
    return out if out[-1] == last else out + [last]


def tune(shapes, ms, formats, group_size: int, rep_ms: float = 20, passes: int = 2) -> dict:
    info = gpu_info()
    entries = []
    total = len(shapes) * len(ms) * len(formats)
    done, start = 0, time.time()
    for weight, act in formats:
        act_t = torch_dtype(act)
        fp8 = act_t in ACT8_DTYPES  # 8-bit activations: bf16 ones quantized per token, bf16 out
        out_t = torch.bfloat16 if fp8 else act_t
        # layouts whose kernels take per-channel weight scales only (fp8 x fp8) get those
        layout = choose_layout(weight, None, act_t)
        group = PER_CHANNEL if layout in PER_CHANNEL_LAYOUTS else group_size
        for _name, n, k in shapes:
            pw = quantize(torch.randn(n, k, device="cuda") * 0.02, weight, group, act_dtype=act_t)
            key = dispatch.key(pw.layout, act_t, weight, pw.zero_point, out_t if fp8 else None)
            data, scales, zeros, w_scales = pw.kernel_tensors(out_t)
            for m in ms:
                x = torch.randn(m, k, device="cuda", dtype=out_t)
                x, xs = quantize_activations(x, act) if fp8 else (x, None)
                out = torch.empty(m, n, device="cuda", dtype=out_t)
                exp = dispatch.explain_problem(key, m, n, k, pw.group_size)
                index = {b.spec.name(): b.index for b in dispatch.built()}
                times = time_candidates(
                    {c: functools.partial(launch, index[c], x, data, scales, zeros, out, pw.group_size, x_scale=xs,
                                          w_scales=w_scales)
                     for c, _est in exp.candidates}, passes, rep_ms)
                if times:
                    entries.append({"key": str(key), "n": n, "k": k, "m": m,
                                    "group_size": dispatch.profile_group(pw.group_size, k), "times_us": times})
                done += 1
                eta = (time.time() - start) / done * (total - done)
                print(f"\r[{done}/{total}] {weight}x{act} N={n} K={k} M={m:<5} eta {eta:4.0f} s", end="",
                      file=sys.stderr, flush=True)
            del pw
    print(file=sys.stderr)
    return {"version": PROFILE_VERSION, "gpu": info["gpu"], "sms": info["sms"],
            "measured": {k: v for k, v in info.items() if k not in ("gpu", "sms")},
            "kernels": sorted({n for e in entries for n in e["times_us"]}), "entries": entries}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shapes", default="llama3-8b,llama3-70b", help="shape names, sets or N:K, comma-separated")
    p.add_argument("--m", default=",".join(map(str, DEFAULT_M)), help="M values (use the M buckets: powers of 2)")
    p.add_argument("--formats", default=",".join(f"{w}:{a.short}" for a in ACTIVATIONS for w in FORMATS),
                   help="weight:act pairs (weights: %s; activations: %s; and e4m3:e4m3 for fp8 x fp8 (per-channel), "
                        "s4:e4m3 for W4A8)" % (", ".join(FORMATS), ", ".join(a.short for a in ACTIVATIONS)))
    p.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE, help=f"{PER_CHANNEL} for per-channel")
    p.add_argument("--rep-ms", type=float, default=20)
    p.add_argument("--passes", type=int, default=2, help="interleaved measurement rounds; the best counts")
    p.add_argument("--out", default=None, help="profile path (default: profiles/<gpu>.json)")


def main(args: argparse.Namespace) -> int:
    if not torch.cuda.is_available():
        raise ValueError("mixgemm tune needs a CUDA GPU")
    formats = [tuple(f.split(":")) for f in args.formats.split(",")]
    doc = tune(parse_shapes(args.shapes), parse_ms(args.m), formats, args.group_size,
               args.rep_ms, args.passes)
    out = Path(args.out or f"profiles/{profile_name(doc['gpu'])}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}: {len(doc['entries'])} entries over {len(doc['kernels'])} kernels")
    return 0
