"""``mixgemm bench``: time mixgemm next to cuBLAS and peers, as a fraction of the roofline.

Method (shared/TARGETS.md): CUDA-event timing, L2 flushed before every call, warm-up, median;
random data. The two ceilings are measured in the same run: a 2 GiB device-to-device copy (bytes
read + written) and an 8192^3 cuBLAS bf16 GEMM. Roofline time of y[M,N] = x[M,K] @ W[N,K]^T is
max(bytes / copy bandwidth, 2*M*N*K / bf16 rate) with bytes = packed W + scales (+ zeros) + x + y.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from typing import Callable, Optional

import torch

SHAPES = {  # name -> (N, K): Llama-3 layers, N = out features
    "l3-8b.qkv": (6144, 4096), "l3-8b.gate_up": (28672, 4096), "l3-8b.down": (4096, 14336),
    "l3-70b.qkv": (10240, 8192), "l3-70b.gate_up": (57344, 8192), "l3-70b.down": (8192, 28672),
}
SHAPE_SETS = {"llama3-8b": [s for s in SHAPES if s.startswith("l3-8b")],
              "llama3-70b": [s for s in SHAPES if s.startswith("l3-70b")]}
DEFAULT_M = (1, 16, 64, 256, 1024, 4096)


def bench_us(fn: Callable[[], object], warmup_ms: float = 25, rep_ms: float = 100) -> float:
    """Median time in microseconds, L2 flushed before each call."""
    try:
        from triton.testing import do_bench  # noqa: PLC0415
        return 1e3 * do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median")
    except ImportError:
        flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
        for _ in range(5):
            fn()
        times = []
        for _ in range(50):
            flush.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e3)
        return statistics.median(times)


def ceilings() -> dict:
    """Copy bandwidth (bytes/s) and bf16 GEMM rate (FLOP/s), measured now."""
    n = 1 << 30  # 2 GiB of bf16
    src = torch.randn(n, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    copy_us = bench_us(lambda: dst.copy_(src))
    del src, dst
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    mm_us = bench_us(lambda: a @ b)
    return {"copy_bytes_per_s": 2 * 2 * n / (copy_us * 1e-6), "bf16_flops_per_s": 2 * 8192**3 / (mm_us * 1e-6)}


def gpu_info() -> dict:
    info = {"gpu": torch.cuda.get_device_name(), "sms": torch.cuda.get_device_properties(0).multi_processor_count}
    try:
        q = "clocks.sm,clocks.max.sm,clocks.mem,power.limit,clocks_throttle_reasons.active"
        out = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        info.update(zip(["sm_clock_mhz", "sm_clock_max_mhz", "mem_clock_mhz", "power_limit_w", "throttle"],
                        [v.strip() for v in out.split(",")]))
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    return info


def roofline_us(m: int, n: int, k: int, weight_bytes: int, ceil: dict, act_bytes: int = 2) -> float:
    bytes_moved = weight_bytes + (m * k + m * n) * act_bytes
    return 1e6 * max(bytes_moved / ceil["copy_bytes_per_s"], 2.0 * m * n * k / ceil["bf16_flops_per_s"])


def tinygemm_fn(w: torch.Tensor, x: torch.Tensor, group_size: int) -> Optional[Callable]:
    """torch's int4 tinygemm (bf16, asymmetric g128), or None where this torch lacks it."""
    try:
        n, k = w.shape
        g = w.float().reshape(n, k // group_size, group_size)
        lo, hi = g.amin(-1), g.amax(-1)
        scale = ((hi - lo).clamp(min=1e-6) / 15)
        q = torch.clamp(torch.round((g - lo.unsqueeze(-1)) / scale.unsqueeze(-1)), 0, 15).to(torch.int32).reshape(n, k)
        zero = lo + 8 * scale
        sz = torch.stack([scale.t(), zero.t()], dim=-1).to(torch.bfloat16).contiguous()
        packed_u8 = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)
        wp = torch.ops.aten._convert_weight_to_int4pack(packed_u8, 8)
        fn = lambda: torch.ops.aten._weight_int4pack_mm(x, wp, group_size, sz)  # noqa: E731
        fn()
        return fn
    except Exception:  # noqa: BLE001  (a peer that does not run here is reported as n/a)
        return None


def run(shapes: list[str], ms: list[int], vs: list[str], weight_dtype: str = "s4", group_size: int = 128,
        act: torch.dtype = torch.bfloat16) -> dict:
    import mixgemm  # noqa: PLC0415
    torch.manual_seed(0)
    ceil = ceilings()
    info = gpu_info()
    rows = []
    for shape in shapes:
        n, k = SHAPES[shape] if shape in SHAPES else tuple(int(v) for v in shape.split(":"))
        w = torch.randn(n, k, dtype=act, device="cuda") * 0.02
        pw = mixgemm.quantize(w, weight_dtype, group_size, act_dtype=act)
        w_deq = mixgemm.dequantize(pw)
        for m in ms:
            x = torch.randn(m, k, dtype=act, device="cuda")
            row = {"shape": shape, "n": n, "k": k, "m": m}
            row["kernel"] = mixgemm.explain(x, pw).choice.spec.name()
            row["mixgemm_us"] = bench_us(lambda: mixgemm.gemm(x, pw))
            row["roofline_us"] = roofline_us(m, n, k, pw.nbytes(), ceil)
            if "cublas" in vs:
                row["cublas_us"] = bench_us(lambda: x @ w_deq.t())
            if "tinygemm" in vs and act == torch.bfloat16:
                fn = tinygemm_fn(w, x, group_size)
                row["tinygemm_us"] = bench_us(fn) if fn else None
            rows.append(row)
            print(format_row(row), flush=True)
        del w, w_deq, pw
    after = gpu_info()
    return {"ceilings": ceil, "gpu": info, "gpu_after": after, "weight_dtype": weight_dtype,
            "group_size": group_size, "act": str(act), "rows": rows}


def format_row(r: dict) -> str:
    pct = 100 * r["roofline_us"] / r["mixgemm_us"]
    s = f"{r['shape']:>16} M={r['m']:<5} mixgemm {r['mixgemm_us']:9.1f} us ({pct:5.1f}% of roofline {r['roofline_us']:.1f})"
    if r.get("cublas_us"):
        s += f"  cuBLAS bf16 {r['cublas_us']:9.1f} us ({r['cublas_us'] / r['mixgemm_us']:.2f}x)"
    if "tinygemm_us" in r:
        s += f"  tinygemm {r['tinygemm_us']:.1f} us" if r["tinygemm_us"] else "  tinygemm n/a"
    return s


def markdown(result: dict) -> str:
    c, g = result["ceilings"], result["gpu"]
    lines = [f"GPU: {g.get('gpu')} ({g.get('sms')} SMs, SM clock {g.get('sm_clock_mhz', '?')} MHz of "
             f"{g.get('sm_clock_max_mhz', '?')}, power limit {g.get('power_limit_w', '?')} W). Ceilings measured in "
             f"this run: copy {c['copy_bytes_per_s'] / 1e12:.2f} TB/s, bf16 GEMM {c['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s. "
             f"Weights {result['weight_dtype']} group {result['group_size']}, activations {result['act']}.", "",
             "| shape | M | mixgemm us | % of roofline | roofline us | cuBLAS bf16 us | speedup vs cuBLAS | kernel |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        cub = r.get("cublas_us")
        lines.append(f"| {r['shape']} | {r['m']} | {r['mixgemm_us']:.1f} | {100 * r['roofline_us'] / r['mixgemm_us']:.0f}% | "
                     f"{r['roofline_us']:.1f} | {cub:.1f} | {cub / r['mixgemm_us']:.2f}x | `{r['kernel']}` |"
                     if cub else f"| {r['shape']} | {r['m']} | {r['mixgemm_us']:.1f} | "
                     f"{100 * r['roofline_us'] / r['mixgemm_us']:.0f}% | {r['roofline_us']:.1f} | - | - | `{r['kernel']}` |")
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shapes", default="llama3-8b,llama3-70b",
                   help="comma-separated: shape names (l3-8b.qkv ...), sets (llama3-8b, llama3-70b) or N:K")
    p.add_argument("--m", default=",".join(map(str, DEFAULT_M)), help="comma-separated token counts")
    p.add_argument("--vs", default="cublas", help="peers: cublas,tinygemm")
    p.add_argument("--weight-dtype", default="s4")
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--act", default="bf16", choices=["bf16", "f16"])
    p.add_argument("--markdown", default=None, help="write the results table here")
    p.add_argument("--json", default=None, help="write all numbers here")


def main(args: argparse.Namespace) -> int:
    if not torch.cuda.is_available():
        raise ValueError("mixgemm bench needs a CUDA GPU")
    shapes = [s for tok in args.shapes.split(",") for s in SHAPE_SETS.get(tok, [tok])]
    result = run(shapes, [int(v) for v in args.m.split(",")], args.vs.split(","), args.weight_dtype,
                 args.group_size, torch.bfloat16 if args.act == "bf16" else torch.float16)
    table = markdown(result)
    print(table)
    if args.markdown:
        open(args.markdown, "w").write(table)
    if args.json:
        open(args.json, "w").write(json.dumps(result, indent=1))
    return 0
