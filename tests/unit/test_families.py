"""A new family plugs in through its own files only: register the toy family (tests/unit/toy_family)
and watch the catalogue, `mixgemm list`, generation, the manifest and dispatch take it up."""
import json

import pytest

from mixgemm import _lib, dispatch
from mixgemm.cli import main
from mixgemm.generator import catalog, default_kernels, register, unregister
from mixgemm.generator.dtypes import DType, ScaleMode
from mixgemm.generator.family import KernelSpec
from mixgemm.generator.layouts import W4_MMA16
from mixgemm.generator.manifest import generate, read_manifest

from .toy_family import ToySpec

TOY = "mixgemm_toy_bf16xs4_g_bf16_l4"


@pytest.fixture
def toy():
    register(ToySpec)
    yield ToySpec
    unregister(ToySpec.token)


def test_catalogue_and_parse(toy):
    names = {s.name() for s in catalog()}
    assert TOY in names and "mixgemm_toy_bf16xs4_g_bf16_l3" not in names  # its predicate ran
    assert KernelSpec.parse(TOY) == ToySpec(DType.BF16, DType.S4, ScaleMode.GROUP, False, DType.BF16, lanes=4)
    assert TOY in {s.name() for s in default_kernels()}
    # the other families' names are untouched
    assert "mixgemm_sm90_bf16xs4_g_bf16_t128x16x64_c2x1_coop" in names


def test_gone_after_unregistering(toy):
    unregister("toy")
    assert not any(s.token == "toy" for s in catalog())
    with pytest.raises(ValueError, match="unknown kernel family"):
        KernelSpec.parse(TOY)
    register(ToySpec)


def test_list_shows_it(toy, capsys):
    assert main(["list", "--all", "--arch", "86"]) == 0
    out = capsys.readouterr().out
    assert TOY in out and "4 lanes" in out and "toy family for tests" in out
    assert "mixgemm_sm90" not in out  # sm90a code does not run on sm86


def test_generation_and_manifest(toy, tmp_path):
    generate([s for s in catalog() if s.token == "toy"], tmp_path)
    text = (tmp_path / f"{TOY}.cu").read_text()
    assert "4 lanes, runs on 86,87,89" in text
    entry = next(e for e in read_manifest(tmp_path / "manifest.json") if e["name"] == TOY)
    assert entry["family"] == "toy" and entry["fields"]["lanes"] == 4 and entry["targets"] == ["86"]
    assert entry["weight_layout"] == W4_MMA16 and entry["deterministic"] is False
    assert "compute_86" in (tmp_path / "manifest.cmake").read_text()


def test_dispatch_takes_it_as_a_candidate(toy, monkeypatch):
    built = ((TOY, (86, 87, 89)), ("mixgemm_dec_bf16xs4_g_bf16_t32x16", (80, 86, 87, 89, 90)))
    monkeypatch.setattr(_lib, "built_kernels", lambda: built)
    dispatch.built.cache_clear()
    dispatch.built_by_name.cache_clear()
    monkeypatch.setenv("MIXGEMM_PROFILE", "")
    try:
        key = dispatch.key(W4_MMA16, __import__("torch").bfloat16, "s4", False)
        exp = dispatch.explain_problem(key, 1, 4096, 4096, 128, cap=86, sms=84)
        assert [name for name, _ in exp.candidates] == [TOY, "mixgemm_dec_bf16xs4_g_bf16_t32x16"]
        assert exp.choice.spec.name() == TOY and exp.choice.source == "fallback"
        # its own shape rule rejects what it cannot run; its M limit is none
        exp = dispatch.explain_problem(key, 1, 4096 + 16, 4096, 128, cap=86, sms=84)
        assert dict(exp.rejected)[TOY] == "N=4112 is not a multiple of 32"
        # deterministic=True: neither the toy nor the decode kernel is batch-invariant with the rest
        exp = dispatch.explain_problem(key, 1, 4096, 4096, 128, cap=86, sms=84, deterministic=True)
        assert exp.choice is None and all("not deterministic" in why for _, why in exp.rejected)
        with pytest.raises(ValueError, match="not deterministic"):
            dispatch.choose(key, 3, 4096, 4096, 128, kernel=TOY, deterministic=True)
        # a GPU the family does not run on: rejected with the capabilities named
        exp = dispatch.explain_problem(key, 1, 4096, 4096, 128, cap=90, sms=132)
        assert dict(exp.rejected)[TOY] == "runs on sm86, sm87, sm89, not sm90"
    finally:
        dispatch.built.cache_clear()
        dispatch.built_by_name.cache_clear()
        dispatch._cache.clear()


def test_unknown_built_kernel_is_skipped_with_a_warning(monkeypatch):
    monkeypatch.setattr(_lib, "built_kernels", lambda: (("mixgemm_future_bf16xs4_g_bf16_q1", (90,)),))
    dispatch.built.cache_clear()
    try:
        with pytest.warns(UserWarning, match="unknown to this mixgemm"):
            assert dispatch.built() == ()
    finally:
        dispatch.built.cache_clear()


def test_manifest_json_is_plain_json(toy, tmp_path):
    generate(default_kernels(), tmp_path)
    doc = json.loads((tmp_path / "manifest.json").read_text())
    assert doc["version"] == 2 and {e["family"] for e in doc["kernels"]} == {"sm90", "sm90f8", "sm90w4a8", "dec", "sm80", "sm80g", "toy"}


def test_autotune_candidates_and_remembered_choices(toy, monkeypatch):
    """Which kernels first-use autotuning times (CPU: the selection), and how a remembered choice
    then serves explain and choose for the whole M bucket (the timing itself runs on the GPU tests)."""
    # within 3x of the best estimate, at most 6, plus each family's best estimate
    cands = [(f"k{i}", 10.0 + i) for i in range(8)] + [("far", 100.0), ("other_best", 50.0), ("none", None)]
    family = {name: "a" for name, _ in cands} | {"other_best": "b", "far": "b"}
    assert dispatch.autotune_candidates(cands, family) == ["k0", "k1", "k2", "k3", "k4", "k5", "other_best"]
    assert dispatch.autotune_candidates([("x", None)], {"x": "a"}) == []

    built = ((TOY, (86, 87, 89)), ("mixgemm_dec_bf16xs4_g_bf16_t32x16", (80, 86, 87, 89, 90)))
    monkeypatch.setattr(_lib, "built_kernels", lambda: built)
    monkeypatch.setattr(dispatch, "capability", lambda device_index: 86)
    monkeypatch.setattr(dispatch, "sm_count", lambda device_index: 84)
    dispatch.built.cache_clear()
    dispatch.built_by_name.cache_clear()
    monkeypatch.setenv("MIXGEMM_PROFILE", "")
    try:
        key = dispatch.key(W4_MMA16, __import__("torch").bfloat16, "s4", False)
        assert dispatch.choose(key, 5, 4096, 4096, 128).spec.name() == TOY  # the estimate
        akey = dispatch.autotune_key(key, 5, 4096, 4096, 128, 0, False)
        dispatch.record_autotuned(akey, "mixgemm_dec_bf16xs4_g_bf16_t32x16", 7.5)
        for m in (5, 8):  # the same M bucket (5..8), the cached estimate is gone
            c = dispatch.choose(key, m, 4096, 4096, 128)
            assert (c.spec.name(), c.source, c.estimate_us) == ("mixgemm_dec_bf16xs4_g_bf16_t32x16",
                                                                 "autotuned on first use", 7.5)
        assert dispatch.choose(key, 9, 4096, 4096, 128).source == "fallback"  # another bucket
        assert dispatch.choose(key, 5, 4096, 8192, 128).source == "fallback"  # another shape
    finally:
        dispatch.built.cache_clear()
        dispatch.built_by_name.cache_clear()
        dispatch._cache.clear()
        dispatch._autotuned.clear()
