"""Bad calls that need no GPU raise ValueError/TypeError naming the argument before any launch."""
import pytest
import torch

import mixgemm


@pytest.fixture(scope="module")
def pw():
    return mixgemm.quantize(torch.randn(64, 256, dtype=torch.bfloat16), "s4", 128)


def test_unsupported_activation_dtype(pw):
    with pytest.raises(TypeError, match=r"x.dtype=torch.float32"):
        mixgemm.gemm(torch.randn(4, 256, dtype=torch.float32), pw)


def test_cpu_tensors_are_refused(pw):
    with pytest.raises(ValueError, match="x is on cpu"):
        mixgemm.gemm(torch.randn(4, 256, dtype=torch.bfloat16), pw)


def test_shape_mismatch(pw):
    with pytest.raises(ValueError, match=r"K=256"):
        mixgemm.gemm(torch.randn(4, 128, dtype=torch.bfloat16), pw)


def test_not_a_packed_weight():
    with pytest.raises(TypeError, match="pw must be a mixgemm.PackedWeight"):
        mixgemm.gemm(torch.randn(4, 256), torch.randn(64, 256))


def test_not_a_tensor(pw):
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        mixgemm.gemm([[1.0] * 256], pw)


def bf16_s4_key():
    from mixgemm import dispatch
    from mixgemm.generator.layouts import W4_MMA16
    return dispatch.key(W4_MMA16, torch.bfloat16, "s4", False)


def test_forced_kernel_names_are_checked():
    from mixgemm import dispatch
    with pytest.raises(ValueError, match="kernel='nonsense'"):
        dispatch.choose(bf16_s4_key(), 1, 64, 256, 128, kernel="nonsense")
    with pytest.raises(ValueError, match="not built"):
        dispatch.choose(bf16_s4_key(), 1, 64, 256, 128, kernel="mixgemm_sm90_bf16xs4_g_bf16_t64x16x64_c1x1_pp")


def test_no_kernel_message_lists_rejections():
    from mixgemm import dispatch
    exp = dispatch.Explanation(bf16_s4_key(), (1, 40, 256, 128), 90, [], [("k1", "N=40 is not a multiple of 16")], None)
    msg = dispatch.no_kernel_message(exp)
    assert "k1: N=40 is not a multiple of 16" in msg and "M=1 N=40" in msg and "sm90" in msg


def test_shape_and_m_rejection_reasons():
    from mixgemm import dispatch
    from mixgemm.generator import KernelSpec
    s = KernelSpec.parse("mixgemm_sm90_bf16xs4_g_bf16_t128x16x64_c2x1_coop")
    assert dispatch.problem_rejection(s, 1, 4096, 4096, 128) is None
    assert "multiple of 16" in dispatch.problem_rejection(s, 1, 4104, 4096, 128)
    assert "multiple of 64" in dispatch.problem_rejection(s, 1, 4096, 4000, 4000 // 2)
    assert dispatch.problem_rejection(s, 1, 4096, 4096, 4096) is None  # per-channel
    assert dispatch.problem_rejection(s, 100000, 4096, 4096, 128) is None
    d = KernelSpec.parse("mixgemm_dec_bf16xs4_g_bf16_t32x8")
    assert dispatch.problem_rejection(d, 8, 4096, 4000, 16) is None
    assert "M=9 > 8" in dispatch.problem_rejection(d, 9, 4096, 4096, 128)


def test_fallback_prefers_small_token_tiles_for_decode_and_big_ones_for_prefill():
    from mixgemm.generator import Sm90MixedSpec, default_kernels
    from mixgemm.generator.dtypes import DType
    bf16s4 = [s for s in default_kernels() if isinstance(s, Sm90MixedSpec) and s.act == DType.BF16
              and s.weight == DType.S4]
    est = lambda m: min(bf16s4, key=lambda s: s.estimate_us(m, 28672, 4096, 128, 132)).tile  # noqa: E731
    assert est(1)[1] <= 64
    assert est(4096)[1] >= 128


def test_m_runs_expand():
    from mixgemm.tune import parse_ms
    assert parse_ms("1,2,4,...,64") == [1, 2, 4, 8, 16, 32, 64]
    assert parse_ms("1,16,64") == [1, 16, 64]
    assert parse_ms("16,32,...,100") == [16, 32, 64, 100]
    with pytest.raises(ValueError, match="geometric"):
        parse_ms("...,8")


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=80, deadline=None)
@given(lead=st.lists(st.integers(0, 3), max_size=2), k=st.sampled_from([128, 256, 200]),
       dtype=st.sampled_from([torch.bfloat16, torch.float16, torch.float32, torch.int8]),
       bias_len=st.sampled_from([None, 64, 10]), out_dtype=st.sampled_from([None, torch.float32]))
def test_any_bad_cpu_call_raises_a_clear_error(pw, lead, k, dtype, bias_len, out_dtype):
    """On a CPU-only machine every call is refused with ValueError/TypeError naming what is wrong."""
    x = torch.zeros(*lead, k, dtype=dtype)
    bias = None if bias_len is None else torch.zeros(bias_len, dtype=torch.bfloat16)
    with pytest.raises((ValueError, TypeError)) as err:
        mixgemm.gemm(x, pw, bias=bias, out_dtype=out_dtype)
    assert any(word in str(err.value) for word in ("x.", "x is", "pw", "bias", "out_dtype", "K="))


def test_determinism_is_a_family_fact():
    """deterministic=True must exclude kernels whose rounding differs from the large-M kernels'
    (the dispatch side is exercised in test_families.py with built lists): decode and sm90 stream-K
    kernels split K by shape, sm90 data-parallel ones never do."""
    from mixgemm.generator import default_kernels
    by_kind = {}
    for s in default_kernels():
        by_kind.setdefault((s.token, getattr(getattr(s, "decomp", None), "short", "")), set()).add(s.deterministic)
    assert by_kind == {("sm90", ""): {True}, ("sm90", "sk"): {False}, ("dec", ""): {False},
                       ("sm90f8", ""): {True}, ("sm90f8", "sk"): {False},
                       ("sm90w4a8", ""): {True}, ("sm90w4a8", "sk"): {False},
                       ("sm80", ""): {True}, ("sm80", "sk"): {False}, ("sm80g", ""): {True}}
