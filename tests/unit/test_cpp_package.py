"""C++ users get the same library: build examples/cpp against the installed CMake package."""
import shutil
import subprocess
from pathlib import Path

import pytest

import mixgemm
from mixgemm.cli import main


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("nvcc") is None, reason="needs cmake and CUDA")
def test_cpp_example_builds_and_lists_the_same_kernels(repo, tmp_path, capsys):
    main(["cmake-dir"])
    cmake_dir = capsys.readouterr().out.strip()
    assert (Path(cmake_dir) / "mixgemmConfig.cmake").exists()
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(repo / "examples" / "cpp"), "-B", str(build), f"-Dmixgemm_DIR={cmake_dir}"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True)
    out = subprocess.run([str(build / "list_kernels")], check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    assert lines[0].endswith(f"{len(mixgemm.kernels())} kernels")
    assert [line.split()[0] for line in lines[1:1 + len(mixgemm.kernels())]] == mixgemm.kernels()
    if mixgemm.kernels():
        assert "check: status" in out and "(ok)" not in out  # group_size=100 is refused (or no GPU)
