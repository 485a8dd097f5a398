"""The Python packing must match the C++ layout the kernels read: compile a host program against
include/mixgemm/sm90/weight_layout.h (cute only, no GPU) and compare offsets. It needs nvcc and
CUTLASS's headers (nvidia-cutlass, installed by the test extra, or CUTLASS_DIR): where nvcc exists
and the headers do not, it fails rather than skips, so no GPU run or CI run can silently omit it."""
import importlib.util
import os
import shutil
import subprocess

import pytest
import torch

from mixgemm.quant import mma16_permute, mma16_permute8, mma32_permute


def cutlass_dir():
    if os.environ.get("CUTLASS_DIR"):
        return os.environ["CUTLASS_DIR"]
    spec = importlib.util.find_spec("cutlass_library")
    return os.path.join(os.path.dirname(spec.origin), "source") if spec else None


PROGRAM = r"""
#include <cstdio>
#include "mixgemm/sm90/weight_layout.h"
int main(int argc, char** argv) {
  int n = atoi(argv[1]), k = atoi(argv[2]), bits = atoi(argv[3]);
  auto print = [&](auto l) {
    for (int i = 0; i < n; ++i) for (int j = 0; j < k; ++j) printf("%d\n", int(l(i, j, 0)));
  };
  if (bits == 8) print(mixgemm::sm90::weight_layout<cutlass::bfloat16_t, 8>(n, k));
  else if (bits == 48) print(mixgemm::sm90::weight_layout<cutlass::float_e4m3_t, 4>(n, k));  // W4A8
  else print(mixgemm::sm90::weight_layout<cutlass::bfloat16_t, 4>(n, k));
}
"""


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_python_layout_matches_the_header(repo, tmp_path):
    root = cutlass_dir()
    assert root and os.path.exists(os.path.join(root, "include", "cute", "tensor.hpp")), (
        "CUTLASS headers not found: pip install nvidia-cutlass (the [test] extra does) or set CUTLASS_DIR")
    src = tmp_path / "atom.cu"
    src.write_text(PROGRAM)
    exe = tmp_path / "atom"
    subprocess.run(["nvcc", "-std=c++17", "--expt-relaxed-constexpr", f"-I{repo / 'include'}",
                    f"-I{root}/include", str(src), "-o", str(exe)], check=True)
    for bits, permute in ((4, mma16_permute), (8, mma16_permute8), (48, mma32_permute)):
        for n, k in [(16, 32), (48, 128), (128, 64)]:
            out = subprocess.run([str(exe), str(n), str(k), str(bits)], check=True, capture_output=True,
                                 text=True).stdout
            cpp = torch.tensor([int(v) for v in out.split()]).reshape(n, k)
            py = torch.empty(n * k, dtype=torch.long)
            py[permute(torch.arange(n * k).reshape(n, k))] = torch.arange(n * k)
            assert torch.equal(py.reshape(n, k), cpp), (bits, n, k)
