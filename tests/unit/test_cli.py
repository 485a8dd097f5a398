import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixgemm.cli import main
from mixgemm.generator import default_kernels

COMMANDS = ["list", "generate", "bench", "tune", "cmake-dir"]


def cli(*args, **kw):
    """`python -m mixgemm.cli ...` importing the same mixgemm as this test (installed or checkout)."""
    import mixgemm
    env = {**os.environ, "PYTHONPATH": str(Path(mixgemm.__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "mixgemm.cli", *args], env=env, **kw)


@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in COMMANDS])
def test_every_help_works(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage: mixgemm" in capsys.readouterr().out


def test_list_prints_the_catalogue_and_built_column(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "built" in out.splitlines()[0]
    for s in default_kernels():
        assert s.name() in out


def test_list_all_is_longer_and_honours_arch(capsys):
    main(["list"])
    short = capsys.readouterr().out
    main(["list", "--all"])
    everything = capsys.readouterr().out
    assert len(everything) > len(short)
    main(["list", "--all", "--arch", "80"])
    sm80 = capsys.readouterr().out
    assert "mixgemm_dec_" in sm80 and "mixgemm_sm90_" not in sm80


def test_generate_with_filter(tmp_path, capsys):
    assert main(["generate", "--kernels", "f16xu4+t128x64", "--out", str(tmp_path)]) == 0
    names = [k["name"] for k in json.loads((tmp_path / "manifest.json").read_text())["kernels"]]
    assert names and all("f16xu4" in n and "t128x64" in n for n in names)
    assert sorted(p.stem for p in tmp_path.glob("*.cu")) == sorted(names)


@pytest.mark.parametrize("argv, fragment", [
    (["generate", "--kernels", "bogus"], "bogus"),
    (["generate", "--arch", "75"], "no kernel in this selection has code for it"),
    (["generate", "--arch", "volta"], "not an arch"),
])
def test_bad_generate_is_a_clear_error_and_writes_nothing(tmp_path, capsys, argv, fragment):
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_console_script_runs():
    p = cli("list", "--kernels", "smoke", stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0 and "mixgemm_sm90_bf16xs4" in out and "mixgemm_dec_bf16xs4" in out


def test_closed_pipe_is_quiet():
    """`mixgemm list --all | head -1`: no BrokenPipeError traceback."""
    p = cli("list", "--all", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0 and "Traceback" not in err, err
