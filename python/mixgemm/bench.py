"""``mixgemm bench``: time mixgemm next to cuBLAS and peers, as a fraction of the roofline.

Method (docs/TARGETS.md): CUDA-event timing, L2 flushed before every call, warm-up, median;
random data. The two ceilings are measured in the same run: a 2 GiB device-to-device copy (bytes
read + written) and an 8192^3 cuBLAS bf16 GEMM. Roofline time of y[M,N] = x[M,K] @ W[N,K]^T is
max(bytes / copy bandwidth, 2*M*N*K / bf16 rate) with bytes = packed W + scales (+ zeros) + x + y.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
from typing import Callable, Optional

import torch

from .generator.dtypes import ACTIVATIONS, DEFAULT_GROUP_SIZE, DEFAULT_WEIGHT_DTYPE, PER_CHANNEL
from .peers import PEER_FNS
from .quant import FORMATS, torch_dtype

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
        return event_us(fn, reps=50, before=flush.zero_)


def event_us(fn: Callable[[], object], reps: int = 30, before: Optional[Callable[[], object]] = None) -> float:
    """Median microseconds of `fn` between CUDA events, after a warm-up; `before` runs (untimed)
    ahead of each timed call, e.g. to flush L2."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        if before is not None:
            before()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
    return statistics.median(times)


def graph_us(fn: Callable[[], object], reps: int = 30) -> float:
    """Median microseconds of one replay of a CUDA graph that captured `fn`."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()  # warm-up outside the capture, as torch recommends
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return event_us(graph.replay, reps)


def ceilings() -> dict:
    """Copy bandwidth (bytes/s), bf16 GEMM rate and fp8 GEMM rate (FLOP/s, cuBLAS through
    torch._scaled_mm; absent where the GPU has none), measured now."""
    n = 1 << 30  # 2 GiB of bf16
    src = torch.randn(n, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    copy_us = bench_us(lambda: dst.copy_(src))
    del src, dst
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    mm_us = bench_us(lambda: a @ b)
    out = {"copy_bytes_per_s": 2 * 2 * n / (copy_us * 1e-6), "bf16_flops_per_s": 2 * 8192**3 / (mm_us * 1e-6)}
    try:
        a8, b8 = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn)
        one = torch.ones((), device="cuda")
        fp8_us = bench_us(lambda: torch._scaled_mm(a8, b8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
        out["fp8_flops_per_s"] = 2 * 8192**3 / (fp8_us * 1e-6)
    except (RuntimeError, AttributeError):
        pass
    return out


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


def roofline_weight_bytes(pw) -> int:
    """The weight bytes of the roofline: what the kernels read, except that W4A8 weights count their
    group scales as 2 bytes each (a 16-bit scale, as the format's peers store them) rather than the
    8-byte lookup tables the kernels read: the tables' extra traffic counts against mixgemm."""
    if pw.two_level:
        return pw.data.numel() + 2 * pw.scales.numel() + 4 * pw.channel_scales.numel()
    return pw.nbytes()


def roofline_us(m: int, n: int, k: int, weight_bytes: int, ceil: dict, act_bytes: int = 2) -> float:
    """Bytes at the copy bandwidth or FLOPs at the GEMM rate of the activations' width (1 byte: fp8
    x fp8 at the measured fp8 rate; y is 16-bit either way)."""
    bytes_moved = weight_bytes + m * k * act_bytes + m * n * 2
    rate = ceil.get("fp8_flops_per_s", 2 * ceil["bf16_flops_per_s"]) if act_bytes == 1 else ceil["bf16_flops_per_s"]
    return 1e6 * max(bytes_moved / ceil["copy_bytes_per_s"], 2.0 * m * n * k / rate)


def host_us_per_call(fn: Callable[[], object], calls: int = 2000) -> float:
    """Wall-clock microseconds per call of a loop of `fn`, on a problem so small that the host is
    the bottleneck (best of 3 loops)."""
    import time  # noqa: PLC0415

    def loop():
        for _ in range(50):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / calls * 1e6
    return min(loop() for _ in range(3))


def overhead_us(weight_dtype: str, group_size: int, act: torch.dtype, n: int = 256, k: int = 1024,
                layout: Optional[str] = None) -> dict:
    """Host time per eager call at M=1 on a tiny shape: mixgemm.gemm, the bare C++ launch of the
    same kernel, and torch.nn.functional.linear on the dense weight (what a user replaces)."""
    import mixgemm  # noqa: PLC0415
    from mixgemm.ops import launch  # noqa: PLC0415
    w = torch.randn(n, k, device="cuda", dtype=act)
    pw = mixgemm.quantize(w, weight_dtype, group_size, act_dtype=act, layout=layout)
    x = torch.randn(1, k, dtype=act, device="cuda")
    out = torch.empty(1, n, dtype=act, device="cuda")
    choice = mixgemm.explain(x, pw).choice
    bare = host_us_per_call(lambda: launch(choice.index, x, pw.data, pw.scales, pw.zeros, out, pw.group_size))
    full = host_us_per_call(lambda: mixgemm.gemm(x, pw))
    linear = host_us_per_call(lambda: torch.nn.functional.linear(x, w))
    return {"gemm_us_per_call": full, "launch_us_per_call": bare, "python_overhead_us": full - bare,
            "linear_us_per_call": linear, "kernel": choice.spec.name()}


def run(shapes: list[str], ms: list[int], vs: list[str], weight_dtype: str = DEFAULT_WEIGHT_DTYPE,
        group_size: int = DEFAULT_GROUP_SIZE,
        act: torch.dtype = torch.bfloat16, graph: bool = False, layout: Optional[str] = None,
        arch: Optional[int] = None) -> dict:
    """Every shape x M: mixgemm (weights in `layout`, default: the one quantize picks for this GPU, or
    for a GPU of compute capability `arch`, among whose kernels dispatch then chooses) next to the
    peers in `vs`."""
    from .dispatch import dispatch_as  # noqa: PLC0415
    with dispatch_as(arch) if arch is not None else contextlib.nullcontext():
        return _run(shapes, ms, vs, weight_dtype, group_size, act, graph, layout, arch)


def _run(shapes: list[str], ms: list[int], vs: list[str], weight_dtype: str, group_size: int, act: torch.dtype,
         graph: bool, layout: Optional[str], arch: Optional[int]) -> dict:
    import mixgemm  # noqa: PLC0415
    fp8 = act in (torch.float8_e4m3fn, torch.int8)  # 8-bit activations, quantized per token
    act8 = "s8" if act == torch.int8 else "e4m3"
    if act == torch.float8_e4m3fn and not (weight_dtype == "s4" or (weight_dtype == "e4m3" and group_size == PER_CHANNEL)):
        raise ValueError("--act e4m3 takes --weight-dtype e4m3 --group-size -1 (fp8 x fp8, per-channel) or "
                         "--weight-dtype s4 (W4A8)")
    if act == torch.int8 and not (weight_dtype == "s4" and group_size == PER_CHANNEL):
        raise ValueError("--act s8 takes --weight-dtype s4 --group-size -1 (integer W4A8, the Ampere family)")
    x_dtype = torch.bfloat16 if fp8 else act  # fp8: bf16 activations, quantized per token
    act_bytes = 1 if fp8 else 2
    torch.manual_seed(0)
    info = gpu_info()
    ceil = ceilings()
    rows, used_layout = [], layout
    for shape in shapes:
        n, k = SHAPES[shape] if shape in SHAPES else tuple(int(v) for v in shape.split(":"))
        w = torch.randn(n, k, dtype=x_dtype, device="cuda") * 0.02
        pw = mixgemm.quantize(w, weight_dtype, group_size, act_dtype=act, layout=layout,
                              arch=arch)
        w_deq = mixgemm.dequantize(pw, x_dtype)
        used_layout = pw.layout
        for m in ms:
            x = torch.randn(m, k, dtype=x_dtype, device="cuda")
            row = {"shape": shape, "n": n, "k": k, "m": m}
            if fp8:
                xq, xs = mixgemm.quantize_activations(x, act8)
                call = lambda x_, pw_: mixgemm.gemm(x_, pw_, x_scale=xs)  # noqa: E731
                row["mixgemm_us"] = bench_us(lambda: call(xq, pw))
                row["mixgemm_quant_us"] = bench_us(lambda: _quant_and_gemm(mixgemm, x, pw, act8))
                x_run = xq
                row["kernel"] = mixgemm.explain(xq, pw, x_scale=xs).choice.spec.name()
            else:
                call = mixgemm.gemm
                row["mixgemm_us"] = bench_us(lambda: mixgemm.gemm(x, pw))
                x_run = x
                # after the first call: a shape no profile covers is timed then (autotune), and explain
                # reports that choice, the kernel measured here
                row["kernel"] = mixgemm.explain(x, pw).choice.spec.name()
            row["weight_bytes"] = roofline_weight_bytes(pw)
            row["act_bytes"] = act_bytes
            row["roofline_us"] = roofline_us(m, n, k, row["weight_bytes"], ceil, act_bytes)
            if "cublas" in vs:
                row["cublas_us"] = bench_us(lambda: x @ w_deq.t())
            if graph:
                l2 = torch.cuda.get_device_properties(0).L2_cache_size
                pws = [pw] + [mixgemm.quantize(w, weight_dtype, group_size, act_dtype=act, layout=layout)
                              for _ in range(max(0, min(63, -(-2 * l2 // pw.nbytes()) - 1)))]
                # NOTE(inputs ready): consecutive calls get different x tensors, as o and down
                # projections do in a model; repeating one x would let each call overlap the one
                # before (q/k/v, gate/up), which the layer bench measures where the model does it.
                x_alt = [x_run, x_run.clone()]
                row["mixgemm_graph_us"] = graph_rotating_us(
                    lambda i: lambda: call(x_alt[i % 2], pws[i % len(pws)]), pw.nbytes(), l2)
                del pws
                if "cublas" in vs:
                    ws = [w_deq] + [w_deq.clone() for _ in range(max(0, min(15, -(-2 * l2 // (w_deq.numel() * 2)) - 1)))]
                    row["cublas_graph_us"] = graph_rotating_us(lambda i: lambda: x @ ws[i % len(ws)].t(),
                                                               w_deq.numel() * 2, l2)
                    del ws
            for peer in vs:
                if peer in PEER_FNS:
                    fn = PEER_FNS[peer](w, x, group_size)
                    row[f"{peer}_us"] = bench_us(fn) if fn else None
            rows.append(row)
            print(format_row(row), flush=True)
        del w, w_deq
    overhead = {} if fp8 else overhead_us(weight_dtype, group_size, act, layout=layout)
    after = gpu_info()
    # NOTE(ceilings): measured again at the end; the better of the two is the ceiling (clocks ramp up)
    again = ceilings()
    best = {k: max(ceil[k], again[k]) for k in ceil}
    for r in rows:
        r["roofline_us"] = roofline_us(r["m"], r["n"], r["k"], r["weight_bytes"], best, r["act_bytes"])
    warnings = []
    if after.get("throttle") not in (None, "0x0000000000000000", "0x0000000000000004"):
        warnings.append(f"clock throttle reasons active at the end of the run: {after.get('throttle')}")
    if min(ceil["bf16_flops_per_s"], again["bf16_flops_per_s"]) < 0.9 * best["bf16_flops_per_s"]:
        warnings.append(f"bf16 GEMM ceiling moved during the run: {ceil['bf16_flops_per_s'] / 1e12:.0f} -> "
                        f"{again['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s")
    for w_ in warnings:
        print(f"WARNING: {w_}", flush=True)
    return {"ceilings": best, "ceilings_start": ceil, "ceilings_end": again, "gpu": info, "gpu_after": after,
            "warnings": warnings, "overhead": overhead, "weight_dtype": weight_dtype, "group_size": group_size,
            "layout": used_layout, "dispatch_arch": arch,
            "act": str(act).removeprefix("torch."), "rows": rows}


def _quant_and_gemm(mixgemm, x: torch.Tensor, pw, dtype: str = "e4m3") -> torch.Tensor:
    """What an 8-bit-activation layer runs per call: per-token quantization, then the GEMM."""
    xq, xs = mixgemm.quantize_activations(x, dtype)
    return mixgemm.gemm(xq, pw, x_scale=xs)


def format_row(r: dict) -> str:
    pct = 100 * r["roofline_us"] / r["mixgemm_us"]
    s = f"{r['shape']:>16} M={r['m']:<5} mixgemm {r['mixgemm_us']:9.1f} us ({pct:5.1f}% of roofline {r['roofline_us']:.1f})"
    if r.get("cublas_us"):
        s += f"  cuBLAS bf16 {r['cublas_us']:9.1f} us ({r['cublas_us'] / r['mixgemm_us']:.2f}x)"
    if "tinygemm_us" in r:
        s += f"  tinygemm {r['tinygemm_us']:.1f} us" if r["tinygemm_us"] else "  tinygemm n/a"
    return s


PEERS = (("mixgemm_quant_us", "mixgemm incl. quantize_activations"), ("cublas_us", "cuBLAS bf16"),
         ("tinygemm_us", "tinygemm w4"), ("fbgemm_us", "FBGEMM w4"),
         ("gemlite_us", "gemlite w4"), ("scaled_mm_us", "cuBLAS fp8 (tensor scales)"),
         ("scaled_mm_rowwise_us", "torch._scaled_mm rowwise"),
         ("mixgemm_graph_us", "mixgemm graph"), ("cublas_graph_us", "cuBLAS bf16 graph"))


def markdown(result: dict) -> str:
    c, g = result["ceilings"], result["gpu"]
    peers = [(key, label) for key, label in PEERS if any(key in r for r in result["rows"])]
    ov = result.get("overhead", {})
    lines = [f"GPU: {g.get('gpu')} ({g.get('sms')} SMs, SM clock {g.get('sm_clock_mhz', '?')} MHz of "
             f"{g.get('sm_clock_max_mhz', '?')} at the start, power limit {g.get('power_limit_w', '?')} W). "
             f"Ceilings measured in this run: copy {c['copy_bytes_per_s'] / 1e12:.2f} TB/s, bf16 GEMM "
             f"{c['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s"
             + (f", fp8 GEMM {c['fp8_flops_per_s'] / 1e12:.0f} TFLOP/s" if "fp8_flops_per_s" in c else "")
             + f". Weights {result['weight_dtype']} group "
             f"{result['group_size']}" + (f" (layout {result['layout']})" if result.get("layout") else "")
             + (f"; kernels dispatched as on sm{result['dispatch_arch']}" if result.get("dispatch_arch") else "")
             + f", activations {result['act']}. Times in microseconds (median, L2 flushed); "
             f"% = roofline time / measured time; x = peer time / mixgemm time.", ""]
    if ov:
        lines += [f"Per-call host time, eager, M=1 on a tiny shape (256x1024): mixgemm.gemm {ov['gemm_us_per_call']:.1f} us "
                  f"(bare C++ launch {ov['launch_us_per_call']:.1f} us, so Python adds {ov['python_overhead_us']:.1f} us), "
                  f"torch.nn.functional.linear {ov.get('linear_us_per_call', float('nan')):.1f} us.", ""]
    for w in result.get("warnings", []):
        lines += [f"WARNING: {w}", ""]
    head = "| shape | M | roofline | mixgemm | % | " + " | ".join(f"{label} | x" for _, label in peers) + " | kernel |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in result["rows"]:
        cells = [r["shape"], str(r["m"]), f"{r['roofline_us']:.1f}", f"{r['mixgemm_us']:.1f}",
                 f"{100 * r['roofline_us'] / r['mixgemm_us']:.0f}%"]
        for key, _ in peers:
            t = r.get(key)
            cells += [f"{t:.1f}", f"{t / r['mixgemm_us']:.2f}x"] if t else ["n/a", "-"]
        cells.append(f"`{r['kernel'].removeprefix('mixgemm_')}`")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: str) -> None:
    """% of roofline against M, one panel per shape, mixgemm and each peer."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    shapes = list(dict.fromkeys(r["shape"] for r in result["rows"]))
    cols = min(3, len(shapes))
    fig, axes = plt.subplots((len(shapes) + cols - 1) // cols, cols, figsize=(5 * cols, 3.6 * ((len(shapes) + cols - 1) // cols)),
                             squeeze=False)
    for ax, shape in zip(axes.flat, shapes):
        rows = [r for r in result["rows"] if r["shape"] == shape]
        ms = [r["m"] for r in rows]
        for key, label in (("mixgemm_us", f"mixgemm {result['weight_dtype']}"),) + PEERS:
            pts = [(r["m"], 100 * r["roofline_us"] / r[key]) for r in rows if r.get(key)]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label, linewidth=2.5 if key == "mixgemm_us" else 1.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.set_ylim(0, 110)
        ax.set_title(f"{shape} (N={rows[0]['n']}, K={rows[0]['k']})")
        ax.set_xlabel("M (tokens)")
        ax.set_ylabel(f"% of the {result['weight_dtype']} roofline")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shapes):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{result['gpu'].get('gpu')}: y = x @ W^T, W {result['weight_dtype']} g{result['group_size']}, "
                 f"x {result['act']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shapes", default="llama3-8b,llama3-70b",
                   help="comma-separated: shape names (l3-8b.qkv ...), sets (llama3-8b, llama3-70b) or N:K")
    p.add_argument("--m", default=",".join(map(str, DEFAULT_M)), help="comma-separated token counts")
    p.add_argument("--vs", default="cublas,tinygemm,fbgemm,gemlite",
                   help="peers measured in the same process: cublas, " + ", ".join(PEER_FNS) +
                        " (a peer not installed here is reported n/a)")
    p.add_argument("--plot", default=None, help="write a PNG of %% of roofline against M here")
    p.add_argument("--weight-dtype", default=DEFAULT_WEIGHT_DTYPE, choices=sorted(FORMATS))
    p.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE, help=f"{PER_CHANNEL} for per-channel")
    p.add_argument("--act", default=ACTIVATIONS[0].short, choices=[a.short for a in ACTIVATIONS] + ["e4m3", "s8"],
                   help="activation dtype; e4m3: bf16 activations quantized per token, with --weight-dtype e4m3 "
                        "--group-size -1 (fp8 x fp8) or --weight-dtype s4 (W4A8); compare with --vs "
                        "cublas,scaled_mm_rowwise,scaled_mm; s8: integer W4A8 (--weight-dtype s4 --group-size -1)")
    p.add_argument("--layout", default=None,
                   help="pack the weights in this layout (default: the one quantize picks for this GPU), e.g. "
                        "w8_kmajor with --weight-dtype s8 --group-size -1 to time the Ampere (sm80) family on a Hopper GPU")
    p.add_argument("--dispatch-arch", type=int, default=None,
                   help="choose kernels as dispatch would on a GPU of this compute capability (e.g. 86: the Ampere "
                        "path, timed here; sm_80 code runs on an H100)")
    p.add_argument("--graph", action="store_true",
                   help="also time mixgemm and cuBLAS as CUDA-graph replays of back-to-back calls over weight "
                        "copies that exceed L2 (how serving engines run decode)")
    p.add_argument("--layer", default=None, help="instead of single GEMMs: a decoder layer's projections "
                   "(llama3-8b, llama3-70b) at the --m batch sizes, eager and under CUDA graphs")
    p.add_argument("--layers", type=int, default=8, help="layers with distinct weights for --layer")
    p.add_argument("--markdown", default=None, help="write the results table here")
    p.add_argument("--json", default=None, help="write all numbers here")


def graph_rotating_us(make_call: Callable[[int], Callable[[], object]], copy_bytes: int, l2_bytes: int) -> float:
    """Microseconds per call in a CUDA graph of back-to-back calls that rotate over enough weight
    copies (call i uses copy i % copies: make_call(i) picks it) to exceed twice the L2, so weights
    come from DRAM."""
    copies = min(max(1, -(-2 * l2_bytes // max(copy_bytes, 1))), 64)
    rounds = max(1, 16 // copies)
    calls = [make_call(i) for i in range(rounds * copies)]  # call i uses copy i % copies (make_call's job)

    def seq():
        for c in calls:
            c()
    return graph_us(seq) / len(calls)


def main(args: argparse.Namespace) -> int:
    if not torch.cuda.is_available():
        raise ValueError("mixgemm bench needs a CUDA GPU")
    if args.layer:
        from .layer_bench import MODELS, layer_markdown, run_layer  # noqa: PLC0415
        if args.layer not in MODELS:
            raise ValueError(f"--layer {args.layer!r}: choose one of {sorted(MODELS)}")
        result = run_layer(args.layer, [int(v) for v in args.m.split(",")], args.layers, args.weight_dtype,
                           args.group_size, torch_dtype(args.act))
        table = layer_markdown(result)
        print(table)
        if args.markdown:
            open(args.markdown, "w").write(table)
        if args.json:
            open(args.json, "w").write(json.dumps(result, indent=1))
        return 0
    shapes = [s for tok in args.shapes.split(",") for s in SHAPE_SETS.get(tok, [tok])]
    result = run(shapes, [int(v) for v in args.m.split(",")], args.vs.split(","), args.weight_dtype,
                 args.group_size, torch_dtype(args.act), graph=args.graph, layout=args.layout,
                 arch=args.dispatch_arch)
    table = markdown(result)
    print(table)
    if args.markdown:
        open(args.markdown, "w").write(table)
    if args.plot:
        plot(result, args.plot)
    if args.json:
        open(args.json, "w").write(json.dumps(result, indent=1))
    return 0
