"""Run one built kernel of each type pair under compute-sanitizer (memcheck, racecheck) and print
a summary. Usage on a GPU machine: python tests/sanitize.py [--tools memcheck,racecheck]."""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

DRIVER = r"""
import sys, torch, mixgemm
from mixgemm.generator import KernelSpec
name = sys.argv[1]
from mixgemm.testing import kernel_inputs, launch_kernel, kernel_weight, poisoned_output, reference, assert_close_to_reference
spec = KernelSpec.parse(name)
pws = [kernel_weight(spec, 256, 512, 128, seed=i, scale=1.0) for i in range(2)]
for m in (1, 33) if spec.max_m() is None else (1, spec.max_m()):
    x, xs = kernel_inputs(spec, m, 512)
    # the second launch reads the same x: it carries MIXGEMM_FLAG_INPUTS_READY (reads before the PDL wait)
    for pw in pws:
        out = poisoned_output(spec, m, 256)
        launch_kernel(name, x, pw, out, x_scale=xs)
        torch.cuda.synchronize()
        assert_close_to_reference(out, reference(x, pw, x_scale=xs), name)
print("driver ok")
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tools", default="memcheck,racecheck")
    p.add_argument("--timeout", type=int, default=300)
    p.add_argument("--families", default=None, help="comma-separated family tokens (default: every family)")
    args = p.parse_args()
    import mixgemm  # noqa: PLC0415
    picks = {}
    for name in mixgemm.kernels():
        spec = mixgemm.generator.KernelSpec.parse(name)
        if args.families and spec.token not in args.families.split(","):
            continue
        picks.setdefault((spec.token, spec.weight), name)  # one kernel per family and weight format
    rows, failed = [], False
    for name in picks.values():
        for tool in args.tools.split(","):
            cmd = ["compute-sanitizer", f"--tool={tool}",
                   sys.executable, "-c", DRIVER, name]
            t = time.time()
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                out = r.stdout + r.stderr
                summary = re.findall(r"(?:ERROR|RACECHECK) SUMMARY: .*", out)
                ok = r.returncode == 0 and "driver ok" in out and all(" 0 " in s for s in summary)
                rows.append((name, tool, "; ".join(summary) or "no summary", "ok" if ok else f"FAIL rc={r.returncode}",
                             time.time() - t))
                if not ok:
                    failed = True
                    print(out[-3000:], file=sys.stderr)
            except subprocess.TimeoutExpired:
                rows.append((name, tool, f"timeout after {args.timeout} s", "TIMEOUT", time.time() - t))
                failed = True
    print("\ncompute-sanitizer summary")
    for name, tool, summary, verdict, secs in rows:
        print(f"  {verdict:8} {tool:9} {name}  [{summary}]  {secs:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
