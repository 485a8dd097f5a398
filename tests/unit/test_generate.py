import jinja2
import pytest

from mixgemm.generator import default_kernels
from mixgemm.generator.manifest import generate, read_manifest
from mixgemm.generator.render import environment
from mixgemm.generator.catalog import select


def test_committed_kernels_match_a_fresh_generation(repo, tmp_path):
    generate(default_kernels(), tmp_path)
    committed = sorted(p.name for p in (repo / "kernels_generated").iterdir())
    fresh = sorted(p.name for p in tmp_path.iterdir())
    assert committed == fresh
    for name in fresh:
        assert (repo / "kernels_generated" / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_generation_is_incremental_and_removes_stale_files(tmp_path):
    first = generate(default_kernels(), tmp_path)
    assert first["written"] and not first["unchanged"]
    again = generate(default_kernels(), tmp_path)
    assert not again["written"] and not again["removed"]
    (tmp_path / "user_notes.txt").write_text("kept")
    fewer = select("smoke")
    report = generate(fewer, tmp_path)
    assert len(report["removed"]) == len(default_kernels()) - len(fewer)
    assert (tmp_path / "user_notes.txt").exists()
    assert [k["name"] for k in read_manifest(tmp_path / "manifest.json")] == [s.name() for s in fewer]


def test_templates_are_strict():
    with pytest.raises(jinja2.UndefinedError):
        environment().from_string("{{ missing }}").render()


def test_generated_sources_name_their_spec_and_capabilities(tmp_path):
    generate(select("smoke"), tmp_path, archs=["90a"])
    cmake = (tmp_path / "manifest.cmake").read_text()
    for s in select("smoke"):
        text = (tmp_path / f"{s.name()}.cu").read_text()
        assert f"MIXGEMM_REGISTER_KERNEL({s.name()}, {s.name()}_config, 90)" in text
        assert s.name() in cmake
    assert "code=sm_90a" in cmake and "code=sm_90\"" in cmake and "sm_80" not in cmake


def test_arch_filter_sets_targets_and_capabilities(tmp_path):
    generate(select("smoke"), tmp_path, archs=["86"])
    entries = read_manifest(tmp_path / "manifest.json")
    assert sorted(e["family"] for e in entries) == ["dec", "sm80", "sm80g"]  # sm90a code cannot run on sm86
    assert all(e["targets"] == ["80"] and e["capabilities"] == [80, 86, 87, 89] for e in entries)
