import pytest
from hypothesis import given, strategies as st

from mixgemm.generator import DType, KernelSpec, ScaleMode, Schedule, catalog, default_kernels, invalid_reason, is_valid
from mixgemm.generator.catalog import product_of_axes, select


def test_every_catalog_name_round_trips():
    specs = catalog()
    assert len(specs) > 20
    for s in specs:
        assert KernelSpec.parse(s.name()) == s
    assert len({s.name() for s in specs}) == len(specs)


def test_catalog_is_sorted_and_filtered_by_the_one_predicate():
    specs = catalog()
    assert [s.name() for s in specs] == sorted(s.name() for s in specs)
    every = list(product_of_axes())
    assert set(specs) == {s for s in every if invalid_reason(s) is None}
    assert len(every) > len(specs)  # the predicate rejects some of the product


def test_default_set_is_valid_and_covers_the_type_pairs():
    d = default_kernels()
    assert d and all(is_valid(s) for s in d)
    pairs = {(s.act, s.weight, s.zero) for s in d}
    assert pairs == {(a, w, w == DType.U4) for a in (DType.BF16, DType.F16) for w in (DType.S4, DType.U4)}


@pytest.mark.parametrize("bad", ["", "mixgemm_sm90", "mixgemm_sm90_bf16xs4_g_bf16_t128x16x64_c2x1_fast",
                                 "mixgemm_sm90_bf16xq4_g_bf16_t128x16x64_c2x1_coop", "gemm_128x128"])
def test_parse_rejects_non_names(bad):
    with pytest.raises(ValueError):
        KernelSpec.parse(bad)


def spec(**kw):
    base = dict(arch=90, act=DType.BF16, weight=DType.S4, scale=ScaleMode.GROUP, zero=False, out=DType.BF16,
                tile=(128, 16, 64), cluster=(2, 1), schedule=Schedule.COOPERATIVE)
    base.update(kw)
    return KernelSpec(**base)


@pytest.mark.parametrize("kw, fragment", [
    (dict(arch=80), "arch"),
    (dict(act=DType.F32), "activation"),
    (dict(weight=DType.S8), "weight"),
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


def test_valid_example():
    assert invalid_reason(spec()) is None


def test_dtype_facts():
    assert DType.S4.qmin == -8 and DType.S4.qmax == 7 and DType.U4.qmax == 15
    assert DType.from_short("bf16") is DType.BF16 and DType.BF16.cutlass == "cutlass::bfloat16_t"
    with pytest.raises(ValueError, match="unknown dtype"):
        DType.from_short("int3")


def test_select_filters():
    assert select("smoke") and len(select("smoke")) == 1
    assert select("all") == catalog()
    only = select("bf16xs4+t128x16")
    assert only and all("bf16xs4" in s.name() and "t128x16" in s.name() for s in only)
    with pytest.raises(ValueError, match="match no kernel"):
        select("nosuchthing")
    assert select("default", archs=[80]) == []


@given(st.sampled_from(list(product_of_axes())))
def test_name_round_trip_for_any_spec_in_the_product(s):
    assert KernelSpec.parse(s.name()) == s
