import json

import pytest

from mixgemm import profiles

KEY = "w4_mma16_shuffled bf16 x s4 scale=group zero=False out=bf16"
A, B = "mixgemm_sm90_bf16xs4_g_bf16_t128x16x64_c2x1_coop", "mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop"


def doc(entries, gpu="GPU X", sms=132):
    return {"version": 1, "gpu": gpu, "sms": sms, "entries": entries}


def entry(n, k, m, times, g=128):
    return {"key": KEY, "n": n, "k": k, "m": m, "group_size": g, "times_us": times}


def test_exact_then_nearest_lookup():
    p = profiles.Profile(doc([entry(4096, 4096, 16, {A: 10.0, B: 12.0}), entry(28672, 4096, 16, {A: 30.0, B: 20.0})]),
                         "t", {A, B})
    assert p.lookup(KEY, 128, 16, 4096, 4096) == ({A: 10.0, B: 12.0}, None)
    times, near = p.lookup(KEY, 128, 16, 24576, 4096)
    assert near == (28672, 4096) and times[B] == 20.0
    assert p.lookup(KEY, 128, 16, 14336, 4096) is None  # too far from any measured shape
    assert p.lookup(KEY, 128, 32, 4096, 4096) is None
    assert p.lookup(KEY, 64, 16, 4096, 4096) is None


def test_unbuilt_kernels_are_ignored_with_a_warning():
    with pytest.warns(UserWarning, match="not built"):
        p = profiles.Profile(doc([entry(4096, 4096, 16, {A: 10.0, "mixgemm_sm90_gone": 1.0})]), "t", {A})
    assert p.lookup(KEY, 128, 16, 4096, 4096)[0] == {A: 10.0}


@pytest.mark.parametrize("bad", [{"version": 7}, doc([{"key": KEY}]), doc([entry(1, 2, 3, "fast")]), []])
def test_malformed_profiles_are_clear_errors(bad):
    with pytest.raises(ValueError, match="mixgemm tune"):
        profiles.Profile(bad, "t", {A})


def test_corrupt_file_and_other_gpu(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    path.write_text("{not json")
    monkeypatch.setenv("MIXGEMM_PROFILE", str(path))
    profiles.load_for.cache_clear()
    with pytest.raises(ValueError, match="not valid JSON"):
        profiles.load_for("GPU X", 132, frozenset({A}))
    path.write_text(json.dumps(doc([entry(4096, 4096, 16, {A: 1.0})], gpu="GPU Y")))
    profiles.load_for.cache_clear()
    with pytest.warns(UserWarning, match="not GPU X"):
        assert profiles.load_for("GPU X", 132, frozenset({A})) is None
    monkeypatch.setenv("MIXGEMM_PROFILE", "")
    profiles.load_for.cache_clear()
    assert profiles.load_for("GPU Y", 132, frozenset({A})) is None
    profiles.load_for.cache_clear()


def test_profile_name():
    assert profiles.profile_name("NVIDIA H100 80GB HBM3") == "nvidia_h100_80gb_hbm3"


def test_dispatch_order_exact_then_autotuned_then_nearest(tmp_path, monkeypatch):
    """An exact profile entry is final; a nearby shape's entry is a tentative prior (the first eager
    call times candidates), and what that measured outranks it."""
    import torch

    from mixgemm import _lib, dispatch
    from mixgemm.generator.layouts import W4_MMA16

    key = dispatch.key(W4_MMA16, torch.bfloat16, "s4", False)
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": 1, "gpu": "GPU X", "sms": 132, "entries": [
        {"key": str(key), "n": 4096, "k": 4096, "m": 64, "group_size": 128, "times_us": {A: 10.0, B: 20.0}}]}))
    monkeypatch.setenv("MIXGEMM_PROFILE", str(path))
    monkeypatch.setattr(_lib, "built_kernels", lambda: ((A, (90,)), (B, (90,))))
    monkeypatch.setattr(dispatch, "capability", lambda device_index: 90)
    monkeypatch.setattr(dispatch, "sm_count", lambda device_index: 132)
    monkeypatch.setattr(dispatch, "gpu_name", lambda device_index: "GPU X")
    for cached in (dispatch.built, dispatch.built_by_name, profiles.load_for):
        cached.cache_clear()
    try:
        exact = dispatch.choose(key, 64, 4096, 4096, 128)
        assert (exact.spec.name(), exact.source, exact.tentative) == (A, "profile exact", False)
        near = dispatch.choose(key, 64, 4608, 3584, 128)
        assert (near.spec.name(), near.source, near.tentative) == (A, "profile nearest 4096:4096", True)
        for shape in ((4096, 4096), (4608, 3584)):
            dispatch.record_autotuned(dispatch.autotune_key(key, 64, *shape, 128, 0, False), B, 15.0)
        assert dispatch.choose(key, 64, 4096, 4096, 128).source == "profile exact"
        tuned = dispatch.choose(key, 64, 4608, 3584, 128)
        assert (tuned.spec.name(), tuned.source, tuned.tentative) == (B, "autotuned on first use", False)
    finally:
        for cached in (dispatch.built, dispatch.built_by_name, profiles.load_for):
            cached.cache_clear()
        dispatch._cache.clear()
        dispatch._autotuned.clear()
