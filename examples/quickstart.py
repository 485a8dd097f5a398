"""Quantize a Linear weight to int4, run mixgemm.gemm, and check it against the reference.

On a machine without a GPU this still quantizes, packs and dequantizes, and lists the build.
"""
import time

import torch

import mixgemm

N, K, M = 6144, 4096, 16
print(f"mixgemm {mixgemm.__version__}; kernels built: {len(mixgemm.kernels()) if mixgemm._lib.available() else 0}")
device = "cuda" if torch.cuda.is_available() else "cpu"
w = torch.randn(N, K, dtype=torch.bfloat16, device=device) * 0.02
pw = mixgemm.quantize(w, "s4", group_size=128)
print(pw)
w_q = mixgemm.dequantize(pw)
print(f"quantization error |w - dequant(w)| / |w| = {((w_q.float() - w.float()).norm() / w.float().norm()).item():.3f}")

if device == "cuda" and mixgemm._lib.available() and mixgemm.kernels():
    x = torch.randn(M, K, dtype=torch.bfloat16, device=device)
    y = mixgemm.gemm(x, pw)
    ref = x.float() @ w_q.float().t()
    err = ((y.float() - ref).norm() / ref.norm()).item()
    print(mixgemm.explain(x, pw))
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(100):
        mixgemm.gemm(x, pw)
    torch.cuda.synchronize()
    print(f"y = x @ dequant(W).T: M={M} N={N} K={K}, relative error {err:.2e} "
          f"({'OK' if err < 1e-2 else 'FAILED'}), {(time.perf_counter() - t) * 1e4:.1f} us per call (wall clock)")
    raise SystemExit(0 if err < 1e-2 else 1)
print("no GPU or no kernels for it here: the GEMM itself runs on a GPU with kernels built for its arch")
