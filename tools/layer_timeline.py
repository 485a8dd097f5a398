"""Where a decoder layer's time goes under a CUDA graph: the seven projections of llama3-8b for a few
layers, captured once, one replay profiled with torch.profiler (CUPTI kernel records). Prints each
kernel's duration and the gap to the previous kernel's end (negative: PDL overlap).
    python3 tools/layer_timeline.py [--m 1] [--layers 2] [--model llama3-8b]"""
import argparse
import statistics

import torch
from torch.profiler import ProfilerActivity, profile

import mixgemm
from mixgemm.layer_bench import INPUT_OF, MODELS

ap = argparse.ArgumentParser()
ap.add_argument("--m", type=int, default=1)
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--model", default="llama3-8b")
ap.add_argument("--dense", action="store_true", help="time torch.nn.functional.linear (bf16) instead")
a = ap.parse_args()
torch.manual_seed(0)
proj = MODELS[a.model]
ws, order = [], []
for _ in range(a.layers):
    xs = {}  # one input per role and layer, shared only where the model shares it (layer_bench)
    for name, n, k in proj:
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
        ws.append(w if a.dense else mixgemm.quantize(w, "s4", 128))
        order.append(xs.setdefault(INPUT_OF[name], torch.randn(a.m, k, device="cuda", dtype=torch.bfloat16)))
f = (lambda x, w: torch.nn.functional.linear(x, w)) if a.dense else mixgemm.gemm


def run():
    for x, w in zip(order, ws):
        f(x, w)


s = torch.cuda.Stream()
s.wait_stream(torch.cuda.current_stream())
with torch.cuda.stream(s):
    run()
torch.cuda.current_stream().wait_stream(s)
g = torch.cuda.CUDAGraph()
with torch.cuda.graph(g):
    run()
for _ in range(20):
    g.replay()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(5):
        g.replay()
    torch.cuda.synchronize()
allev = sorted((e for e in prof.events() if e.device_type.name == "CUDA"), key=lambda e: e.time_range.start)
# GEMM kernels only (the graph also holds the zero-fill of a workspace allocated during capture)
gemm_names = ("gemm", "Gemm", "cutlass", "sm90_xmma", "nvjet")
ev = [e for e in allev if any(g in e.name for g in gemm_names)]
other = sorted({e.name[:70] for e in allev if e not in ev})
if other:
    print(f"  not GEMMs, left out of the table ({(len(allev) - len(ev)) // 5} per replay): {other}")
per = len(proj) * a.layers
reps = [ev[i:i + per] for i in range(0, len(ev) - per + 1, per)]
print(f"{a.model} M={a.m} {'bf16 dense' if a.dense else 'mixgemm'}: {len(ev)} kernels in 5 replays")
names = [n for _ in range(a.layers) for n, _, _ in proj]
for i, name in enumerate(names[:len(proj) * 2]):
    durs = [r[i].time_range.end - r[i].time_range.start for r in reps]
    gaps = [r[i].time_range.start - r[i - 1].time_range.end for r in reps] if i else [0.0]
    print(f"  {name:5s} {ev[i].name[:60]:60s} dur {statistics.median(durs):6.2f} us  gap {statistics.median(gaps):6.2f} us")
spans = [r[-1].time_range.end - r[0].time_range.start for r in reps]
busy = [sum(e.time_range.end - e.time_range.start for e in r) for r in reps]
print(f"  per layer: span {statistics.median(spans) / a.layers:.1f} us, sum of kernel durations {statistics.median(busy) / a.layers:.1f} us")
