"""Diagnostic: relative error per kernel for small N, per-channel and grouped, both formats."""
import torch
import mixgemm
from mixgemm.generator import KernelSpec
from mixgemm.ops import launch
from mixgemm.testing import reference, relative_error

torch.manual_seed(0)
for weight in ("u4", "s4"):
    for n, k, g in [(16, 8192, -1), (16, 8192, 128), (32, 8192, -1), (128, 8192, -1), (256, 8192, -1), (1024, 8192, -1),
                    (16, 3584, -1), (1024, 3584, -1)]:
        pw = mixgemm.quantize(torch.randn(n, k, device="cuda") * 0.02, weight, g, act_dtype=torch.bfloat16)
        errs = []
        for name in mixgemm.kernels():
            s = KernelSpec.parse(name)
            if s.act.short != "bf16" or s.weight.short != weight:
                continue
            for m in (1, 33):
                x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
                out = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
                launch(mixgemm.kernels().index(name), x, pw.data, pw.scales, pw.zeros, out, pw.group_size)
                errs.append(f"{s.tile[0]}x{s.tile[1]}c{s.cluster[0]} M{m}:{relative_error(out, reference(x, pw)):.1e}")
        print(weight, n, k, g, " ".join(errs), flush=True)
