"""What the fused bias costs: mixgemm.gemm with and without bias, same weights and inputs, CUDA
events with L2 flushed (mixgemm.bench.event_us), on the Llama-3-8B shapes (s4 g128, bf16), and, for
comparison, the unfused way (gemm, then a separate add). The three are timed in interleaved rounds
(the median of each over 5 rounds), so a clock that drifts under sustained load (long compute-bound
calls) does not favour whichever runs first. Prints a markdown table.

    python benchmarks/bias_cost.py [--m 1,16,256,4096] [--weight-dtype s4]
"""
import argparse

import torch

import mixgemm
from mixgemm.bench import SHAPES, event_us

p = argparse.ArgumentParser()
p.add_argument("--m", default="1,16,256,4096")
p.add_argument("--weight-dtype", default="s4")
a = p.parse_args()
flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
print(f"| shape | M | no bias (us) | fused bias (us) | cost | gemm + add (us) | cost |")
print("|---|---|---|---|---|---|---|")
for name in ("l3-8b.qkv", "l3-8b.gate_up", "l3-8b.down"):
    n, k = SHAPES[name]
    pw = mixgemm.quantize(torch.randn(n, k, device="cuda") * 0.02, a.weight_dtype, 128, act_dtype=torch.bfloat16)
    bias = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    for m in (int(v) for v in a.m.split(",")):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        mixgemm.gemm(x, pw), mixgemm.gemm(x, pw, bias=bias)  # dispatch (and any first-use tuning) first
        fns = (lambda: mixgemm.gemm(x, pw), lambda: mixgemm.gemm(x, pw, bias=bias), lambda: mixgemm.gemm(x, pw) + bias)
        rounds = [[event_us(fn, reps=10, before=flush.zero_) for fn in fns] for _ in range(5)]
        t0, t1, t2 = (sorted(r[i] for r in rounds)[2] for i in range(3))
        print(f"| {name} | {m} | {t0:.1f} | {t1:.1f} | {100 * (t1 / t0 - 1):+.1f}% | {t2:.1f} | {100 * (t2 / t0 - 1):+.1f}% |",
              flush=True)
