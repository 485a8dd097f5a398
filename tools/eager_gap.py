#!/usr/bin/env python3
# python3 tools/eager_gap.py  (on the GPU machine, mixgemm installed)
# Kernel durations (CUPTI, torch.profiler) in the bench's eager loop (L2 flush, then the call) against
# the CUDA-event interval, for mixgemm's decode kernel and tinygemm on small layers at M=1.
import torch, statistics, mixgemm
from mixgemm import peers
from torch.profiler import profile, ProfilerActivity
flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
for n, k in [(2048, 1792), (4608, 3584), (8960, 1536)]:
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
    x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
    pw = mixgemm.quantize(w, "s4", 128)
    fns = {"mixgemm": lambda: mixgemm.gemm(x, pw), "tinygemm": peers.tinygemm(w, x, 128)}
    for name, fn in fns.items():
        for _ in range(5): fn()
        torch.cuda.synchronize()
        ev = []
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(50):
                flush.zero_()
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record(); fn(); e.record(); ev.append((s, e))
            torch.cuda.synchronize()
        ev_us = statistics.median(s.elapsed_time(e) * 1e3 for s, e in ev)
        ks = {}
        for evt in prof.events():
            if evt.device_type.name == "CUDA" and "fill" not in evt.name.lower() and "memset" not in evt.name.lower():
                ks.setdefault(evt.name[:60], []).append(evt.device_time if hasattr(evt, "device_time") else evt.cuda_time)
        desc = "; ".join(f"{k_}: n={len(v)} median {statistics.median(v):.2f} us" for k_, v in ks.items())
        print(f"{n}x{k} {name:9s} event {ev_us:6.2f} us | kernels {desc}", flush=True)
