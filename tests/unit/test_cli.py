import json
import subprocess
import sys

from mixgemm.cli import main
from mixgemm.generator import default_kernels


def test_list_prints_the_catalogue_and_built_column(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "built" in out.splitlines()[0]
    for s in default_kernels():
        assert s.name() in out


def test_list_all_is_longer(capsys):
    main(["list"])
    short = capsys.readouterr().out
    main(["list", "--all"])
    assert len(capsys.readouterr().out) > len(short)


def test_generate_with_filter(tmp_path, capsys):
    assert main(["generate", "--kernels", "f16xu4+t128x64", "--out", str(tmp_path)]) == 0
    names = [k["name"] for k in json.loads((tmp_path / "manifest.json").read_text())["kernels"]]
    assert names and all("f16xu4" in n and "t128x64" in n for n in names)
    assert sorted(p.stem for p in tmp_path.glob("*.cu")) == sorted(names)


def test_bad_filter_is_a_clear_error(tmp_path, capsys):
    assert main(["generate", "--kernels", "bogus", "--out", str(tmp_path)]) == 2
    assert "bogus" in capsys.readouterr().err


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "mixgemm.cli", "list", "--kernels", "smoke"],
                       capture_output=True, text=True, check=True)
    assert "mixgemm_sm90_bf16xs4" in r.stdout
