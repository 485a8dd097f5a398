"""C++ users get the same library: build examples/cpp against the installed CMake package."""
import shutil
import subprocess
from pathlib import Path

import pytest

import mixgemm
from mixgemm import _lib
from mixgemm.cli import main


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("nvcc") is None or not _lib.available(),
                    reason="needs cmake, CUDA and an installed mixgemm")
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
    names = mixgemm.kernels()
    assert names, "the installation has no kernels (CI builds the smoke set)"
    assert lines[0].endswith(f"{len(names)} kernels")
    listed = [line.split()[0] for line in lines[1:1 + len(names)]]
    assert listed == names
    for name, caps in _lib.built_kernels():
        assert f"{name} runs on " + " ".join(f"sm{c}" for c in caps) in out
    checks = [line for line in lines if line.startswith("check ")]
    assert len(checks) == len(names) and all("status 1 (group_size" in line and "100" in line for line in checks), checks
