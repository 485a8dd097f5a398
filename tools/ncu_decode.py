"""One dispatched mixgemm.gemm at M=1 per shape, for Nsight Compute:
    ncu --kernel-name regex:decode --section SpeedOfLight --section MemoryWorkloadAnalysis \
        --section LaunchStats --section Occupancy python3 tools/ncu_decode.py
Shapes: l3-70b.gate_up (57344 x 8192) and l3-8b.down (4096 x 14336), s4 x bf16 group 128, or
N:K[:M] arguments."""
import sys

import torch

import mixgemm

shapes = [tuple(map(int, a.split(":"))) for a in sys.argv[1:]] or [(57344, 8192), (4096, 14336)]
for n, k, *m in shapes:
    pw = mixgemm.quantize(torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02, "s4", 128)
    x = torch.randn(m[0] if m else 1, k, device="cuda", dtype=torch.bfloat16)
    print(n, k, mixgemm.explain(x, pw).choice.spec.name(), flush=True)
    mixgemm.gemm(x, pw)
    torch.cuda.synchronize()
