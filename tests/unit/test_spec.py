import dataclasses

import pytest
from hypothesis import given, strategies as st

from mixgemm.generator import (FAMILIES, DecodeSpec, DType, KernelSpec, ScaleMode, Schedule, Sm90MixedSpec, catalog,
                               default_kernels, invalid_reason, is_valid, select, smoke_kernels)
from mixgemm.generator.families.sm90_mixed import Decomposition
from mixgemm.generator.catalog import product_of_axes
from mixgemm.generator.family import WEIGHTS
from mixgemm.generator.cli import parse_archs


def test_every_catalog_name_round_trips():
    specs = catalog()
    assert len(specs) > 20
    for s in specs:
        assert KernelSpec.parse(s.name()) == s
    assert len({s.name() for s in specs}) == len(specs)


def test_catalog_is_sorted_union_of_families_filtered_by_their_predicates():
    specs = catalog()
    assert [s.name() for s in specs] == sorted(s.name() for s in specs)
    every = product_of_axes()
    assert set(specs) == {s for s in every if invalid_reason(s) is None}
    assert len(every) > len(specs)  # the predicates reject some of the product
    assert {s.token for s in specs} == set(FAMILIES) == {"sm90", "sm90f8", "sm90w4a8", "dec", "sm80", "sm80g"}


# every type triple (act, weight, zero point, out) each family serves is in the default set
FAMILY_TYPES = {
    "sm90": {(a, w, not w.signed, a) for a in (DType.BF16, DType.F16) for w in WEIGHTS},
    "dec": {(a, w, not w.signed, a) for a in (DType.BF16, DType.F16) for w in WEIGHTS},
    "sm90f8": {(DType.E4M3, DType.E4M3, False, o) for o in (DType.BF16, DType.F16)},
    "sm90w4a8": {(DType.E4M3, DType.S4, False, o) for o in (DType.BF16, DType.F16)},
    "sm80": {(a, DType.S8, False, a) for a in (DType.BF16, DType.F16)}
            | {(DType.S8, DType.S4, False, o) for o in (DType.BF16, DType.F16)},
    "sm80g": {(a, w, not w.signed, a) for a in (DType.BF16, DType.F16) for w in WEIGHTS},
}


def test_default_set_is_valid_and_covers_the_type_pairs_in_every_family():
    d = default_kernels()
    assert d and all(is_valid(s) for s in d)
    assert set(FAMILIES) == set(FAMILY_TYPES)
    for token in FAMILIES:
        pairs = {(s.act, s.weight, s.zero, s.out) for s in d if s.token == token}
        assert pairs == FAMILY_TYPES[token], token


def test_smoke_is_one_kernel_per_family():
    assert sorted(s.token for s in smoke_kernels()) == sorted(FAMILIES)


@pytest.mark.parametrize("bad", ["", "mixgemm_sm90", "mixgemm_sm90_bf16xs4_g_bf16_t128x16x64_c2x1_fast",
                                 "mixgemm_sm90_bf16xq4_g_bf16_t128x16x64_c2x1_coop", "gemm_128x128",
                                 "mixgemm_nosuchfamily_bf16xs4_g_bf16", "mixgemm_dec_bf16xs4_g_bf16_t128x16x64_c2x1_coop",
                                 "mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop_xx",
                                 "mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop_sk_sk"])
def test_parse_rejects_non_names(bad):
    with pytest.raises(ValueError):
        KernelSpec.parse(bad)


def test_families_have_their_own_grammar():
    dec = KernelSpec.parse("mixgemm_dec_f16xu4_gz_f16_t64x8")
    assert isinstance(dec, DecodeSpec) and dec.rows == 64 and dec.tokens == 8 and dec.zero
    sm90 = KernelSpec.parse("mixgemm_sm90_bf16xs4_g_bf16_t128x16x64_c2x1_coop")
    assert isinstance(sm90, Sm90MixedSpec) and sm90.tile == (128, 16, 64) and sm90.cluster == (2, 1)


def test_stream_k_name_round_trips_and_leaves_existing_names_alone():
    sk = KernelSpec.parse("mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop_sk")
    assert isinstance(sk, Sm90MixedSpec) and sk.decomp == Decomposition.STREAM_K
    assert sk.schedule == Schedule.COOPERATIVE and sk.tile == (128, 64, 64) and sk.cluster == (1, 1)
    assert sk.name() == "mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop_sk" and KernelSpec.parse(sk.name()) == sk
    assert invalid_reason(sk) is None and not sk.deterministic
    plain = KernelSpec.parse("mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop")
    assert plain.decomp == Decomposition.DATA_PARALLEL and plain.deterministic
    assert plain.name() == "mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop"
    assert dataclasses.replace(plain, decomp=Decomposition.STREAM_K) == sk
    names = {s.name() for s in default_kernels()}
    assert {f"mixgemm_sm90_bf16xs4_g_bf16_t128x{tm}x64_c1x1_coop_sk" for tm in (64, 128, 256)} <= names
    assert "mixgemm_sm90_bf16xs4_g_bf16_t128x64x64_c1x1_coop" in names  # the plain kernels stay


def test_pingpong_stream_k_is_rejected_with_a_reason():
    pp_sk = spec(tile=(64, 16, 64), cluster=(1, 1), schedule=Schedule.PINGPONG, decomp=Decomposition.STREAM_K)
    reason = invalid_reason(pp_sk)
    assert reason is not None and "stream-K" in reason and "cooperative" in reason and "ping-pong" in reason
    assert invalid_reason(dataclasses.replace(pp_sk, decomp=Decomposition.DATA_PARALLEL)) is None
    name = "mixgemm_sm90_bf16xs4_g_bf16_t64x16x64_c1x1_pp_sk"
    assert KernelSpec.parse(name) == pp_sk  # the grammar parses it; the predicate refuses it
    assert name not in {s.name() for s in catalog()}


def test_stream_k_estimate_splits_only_where_cutlass_would():
    sk = KernelSpec.parse("mixgemm_sm90_bf16xs4_g_bf16_t128x128x64_c1x1_coop_sk")
    plain = dataclasses.replace(sk, decomp=Decomposition.DATA_PARALLEL)
    # 4096 x 14336 at M=256: 64 output tiles for 132 SMs -> stream-K over all SMs, predicted faster
    assert sk.sk_decomposition(256, 4096, 14336, 132) == (0, 64, 132)
    assert sk.estimate_us(256, 4096, 14336, 128, 132) < 0.7 * plain.estimate_us(256, 4096, 14336, 128, 132)
    # enough tiles (or too little K) to fill the SMs: data-parallel, the same estimate as the plain kernel
    for m, n, k in [(4096, 4096, 4096), (256, 14336, 4096), (64, 4096, 512)]:
        assert sk.sk_decomposition(m, n, k, 132) is None
        assert sk.estimate_us(m, n, k, 128, 132) == plain.estimate_us(m, n, k, 128, 132)
    assert plain.sk_decomposition(256, 4096, 14336, 132) is None


def spec(**kw):
    base = dict(act=DType.BF16, weight=DType.S4, scale=ScaleMode.GROUP, zero=False, out=DType.BF16,
                tile=(128, 16, 64), cluster=(2, 1), schedule=Schedule.COOPERATIVE)
    base.update(kw)
    return Sm90MixedSpec(**base)


@pytest.mark.parametrize("kw, fragment", [
    (dict(act=DType.F32), "activation"),
    (dict(weight=DType.F16), "weight"),
    (dict(weight=DType.E4M3, zero=True), "symmetric"),
    (dict(weight=DType.U8), "zero"),
    (dict(out=DType.F16), "output"),
    (dict(weight=DType.U4), "zero"),
    (dict(zero=True), "symmetric"),
    (dict(tile=(128, 16, 128)), "tile k"),
    (dict(tile=(64, 16, 64)), "cooperative"),
    (dict(tile=(128, 16, 64), schedule=Schedule.PINGPONG), "ping-pong"),
    (dict(cluster=(4, 1)), "cluster"),
    (dict(tile=(256, 256, 64), cluster=(1, 1)), "registers"),
])
def test_invalid_reasons(kw, fragment):
    reason = invalid_reason(spec(**kw))
    assert reason is not None and fragment in reason


def test_decode_invalid_reasons():
    ok = DecodeSpec(DType.BF16, DType.S4, ScaleMode.GROUP, False, DType.BF16, rows=32, tokens=16)
    assert ok.invalid_reason() is None
    assert "rows" in DecodeSpec(DType.BF16, DType.S4, ScaleMode.GROUP, False, DType.BF16, rows=48, tokens=16).invalid_reason()
    assert "tokens" in DecodeSpec(DType.BF16, DType.S4, ScaleMode.GROUP, False, DType.BF16, rows=32, tokens=24).invalid_reason()
    assert DecodeSpec(DType.BF16, DType.S4, ScaleMode.GROUP, False, DType.BF16, rows=32, tokens=64).max_m() == 64
    assert "shared memory" in DecodeSpec(DType.BF16, DType.S4, ScaleMode.GROUP, False, DType.BF16, rows=64, tokens=64).invalid_reason()
    assert ok.max_m() == 16 and not ok.deterministic


def test_valid_example():
    assert invalid_reason(spec()) is None


def test_capabilities_follow_the_compiled_targets():
    sm90, dec = spec(), KernelSpec.parse("mixgemm_dec_bf16xs4_g_bf16_t32x16")
    assert sm90.capabilities() == (90,)
    assert dec.capabilities() == (80, 86, 87, 89, 90)
    assert dec.targets(["86"]) == ("80",) and dec.capabilities(dec.targets(["86"])) == (80, 86, 87, 89)
    assert dec.targets(["90a"]) == ("90",) and sm90.targets(["90a"]) == ("90a",)
    assert sm90.targets(["80"]) == ()


def test_dtype_facts():
    assert DType.S4.qmin == -8 and DType.S4.qmax == 7 and DType.U4.qmax == 15
    assert DType.from_short("bf16") is DType.BF16 and DType.BF16.cutlass == "cutlass::bfloat16_t"
    with pytest.raises(ValueError, match="unknown dtype"):
        DType.from_short("int3")


def test_select_filters():
    assert {s.token for s in select("smoke")} == set(FAMILIES)
    assert select("all") == catalog()
    assert select("none") == []
    only = select("bf16xs4+t128x16")
    assert only and all(s.act == DType.BF16 and s.weight == DType.S4 and s.tile[:2] == (128, 16) for s in only)
    with pytest.raises(ValueError, match="match no kernel"):
        select("nosuchthing")
    assert {s.token for s in select("default", archs=["80"])} == {"dec", "sm80", "sm80g"}
    assert select("default", archs=["75"]) == []
    four = select("default:xs4,xu4")
    assert four and set(four) < set(default_kernels()) and {s.weight.bits for s in four} == {4}
    assert {s.weight.bits for s in default_kernels()} == {4, 8}
    with pytest.raises(ValueError, match="match no kernel in the default set"):
        select("default:t128x16x64_c1x1_pp")


@pytest.mark.parametrize("text, expect", [("90a", ["90a"]), ("sm_90a", ["90a"]), ("sm90a;80", ["90a", "80"]),
                                          ("compute_86, 90", ["86", "90"]), ("", None)])
def test_parse_archs(text, expect):
    assert parse_archs(text) == expect


def test_parse_archs_rejects_junk():
    with pytest.raises(ValueError, match="not an arch"):
        parse_archs("hopper")


@given(st.sampled_from(product_of_axes()))
def test_name_round_trip_for_any_spec_in_the_product(s):
    assert KernelSpec.parse(s.name()) == s


def test_fp8_activation_layouts_is_the_families_fact():
    from mixgemm.generator.layouts import ACT8_FORMATS
    assert ACT8_FORMATS == {(s.layout, s.weight.short): s.act.short for s in catalog() if s.act.bits == 8}
    assert not set(ACT8_FORMATS) & {(s.layout, s.weight.short) for s in catalog() if s.act.bits == 16}
