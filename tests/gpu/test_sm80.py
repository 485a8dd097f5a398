"""The Ampere CUTLASS 2.x family (sm80): s8 weights x f16/bf16 activations with per-channel scales
and a fused bias in the epilogue, weights in the plain w8_kmajor layout. On the H100 its sm_90 build
runs the same mma.sync code; dispatch there prefers the sm90 family (quantize picks that layout),
so these tests reach the sm80 kernels by layout and by name. The registry suites (test_correctness,
test_gemm, test_forward_progress) also run every built sm80 kernel."""
from __future__ import annotations

import pytest
import torch

import mixgemm
from mixgemm.generator import KernelSpec
from mixgemm.testing import (assert_close_to_reference, kernel_inputs, kernel_weight, launch_kernel, output_dtype,
                             poisoned_output, reference, relative_error)

pytestmark = pytest.mark.gpu


def sm80_built() -> list[str]:
    if not mixgemm._lib.available():
        return []
    return [n for n in mixgemm.kernels() if n.startswith("mixgemm_sm80_")]


needs_sm80 = pytest.mark.skipif(not sm80_built(), reason="no sm80 kernel built")


def weight(n, k, act=torch.bfloat16, seed=0, layout="w8_kmajor"):
    g = torch.Generator(device="cuda").manual_seed(seed)
    w = torch.randn(n, k, device="cuda", generator=g) * 0.02
    return w, mixgemm.quantize(w, "s8", mixgemm.PER_CHANNEL, act_dtype=act, layout=layout)


@pytest.mark.parametrize("name", sm80_built())
def test_the_mixed_input_blog_problem_with_bias(name):
    """m=3456, n=4096, k=2048 (the problem of CUTLASS's mixed-input write-up), bias fused; s8
    activations quantized per token for the integer W4A8 kernels."""
    spec = KernelSpec.parse(name)
    m, n, k = 3456, 4096, 2048
    pw = kernel_weight(spec, n, k, seed=7)
    x, xs = kernel_inputs(spec, m, k)
    bias = torch.randn(n, device="cuda", dtype=output_dtype(spec))
    out = poisoned_output(spec, m, n)
    launch_kernel(name, x, pw, out, bias=bias, x_scale=xs)
    assert_close_to_reference(out, reference(x, pw, bias=bias, x_scale=xs), name)
    out2 = poisoned_output(spec, m, n)
    launch_kernel(name, x, pw, out2, split_k=1, x_scale=xs)  # data-parallel, no bias
    assert_close_to_reference(out2, reference(x, pw, x_scale=xs), name + " no bias")


@needs_sm80
@pytest.mark.parametrize("act", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [1, 5, 16, 17, 64, 200, 1000, 4100])
def test_gemm_dispatches_w8_kmajor_weights_to_the_family(act, m):
    if not any(KernelSpec.parse(n).act.short == ("bf16" if act == torch.bfloat16 else "f16") for n in sm80_built()):
        pytest.skip(f"no sm80 kernel for {act} built")
    n, k = 1536, 2112
    _, pw = weight(n, k, act, seed=m)
    x = torch.randn(m, k, device="cuda", dtype=act)
    bias = torch.randn(n, device="cuda", dtype=act)
    assert mixgemm.explain(x, pw).choice.spec.token == "sm80"
    y = mixgemm.gemm(x, pw, bias=bias)
    assert y.dtype == act and y.shape == (m, n)
    assert_close_to_reference(y, reference(x, pw, bias=bias), f"M={m}")


@needs_sm80
def test_dequantize_is_what_the_epilogue_multiplies_by():
    """One-hot rows pick single weight columns: the kernel computes scale[n] * q[n, k] in fp32 and
    rounds once, which is dequantize(pw) rounded once to the activation dtype."""
    n, k = 256, 512
    _, pw = weight(n, k, seed=3)
    x = torch.zeros(k, k, device="cuda", dtype=torch.bfloat16)
    x[torch.arange(k), torch.arange(k)] = 1
    y = mixgemm.gemm(x, pw)
    assert torch.equal(y, mixgemm.dequantize(pw, torch.float32).t().to(torch.bfloat16))


@needs_sm80
def test_same_weights_in_either_layout_give_the_same_product():
    """The sm90/dec layout and the plain one hold the same values: repacking is exact, and the plain
    one's kernels match the other's reference; a kernel forced on the wrong layout is refused by name,
    naming both layouts."""
    n, k = 1024, 4096
    _, fast = weight(n, k, layout="w8_mma16_shuffled")
    plain = fast.to_layout("w8_kmajor")
    assert torch.equal(mixgemm.dequantize(plain), mixgemm.dequantize(fast))
    x = torch.randn(33, k, device="cuda", dtype=torch.bfloat16)
    # the fast layout's own kernels (sm90, dec) may not be in a partial build: compare with its reference
    assert relative_error(mixgemm.gemm(x, plain), reference(x, fast)) < 5e-3
    sm80 = sm80_built()[0]
    with pytest.raises(ValueError, match="w8_kmajor.*w8_mma16_shuffled|w8_mma16_shuffled.*w8_kmajor"):
        mixgemm.gemm(x, fast, kernel=sm80)


@needs_sm80
def test_bad_input_is_refused_before_launch():
    _, pw = weight(256, 1024)
    x = torch.randn(4, 1024, device="cuda", dtype=torch.bfloat16)
    g = torch.Generator(device="cuda").manual_seed(1)
    grouped = mixgemm.quantize(torch.randn(256, 1024, device="cuda", generator=g), "s8", 128,
                               layout="w8_mma16_shuffled")
    with pytest.raises(ValueError, match="per-channel"):
        grouped.to_layout("w8_kmajor")  # the family takes per-channel scales only
    with pytest.raises(ValueError, match="per-channel"):
        mixgemm.quantize(torch.randn(256, 1024, device="cuda"), "s8", 128, layout="w8_kmajor")
    with pytest.raises(ValueError, match="x_scale"):
        mixgemm.gemm(x, pw, x_scale=torch.ones(4, device="cuda"))
    with pytest.raises(ValueError, match="out_dtype"):
        mixgemm.gemm(x, pw, out_dtype=torch.float16)



# ---- integer W4A8: s4 weights x s8 activations quantized per token ------------------------------------
def s8xs4_built() -> bool:
    return any(n.startswith("mixgemm_sm80_s8xs4_") for n in sm80_built())


needs_s8xs4 = pytest.mark.skipif(not s8xs4_built(), reason="no sm80 s8 x s4 kernel built")


@pytest.mark.parametrize("act", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m, k", [(1, 8), (3, 4096), (17, 1000), (64, 14336)])
def test_quantize_activations_s8_is_its_torch_statement_bit_for_bit(act, m, k):
    from mixgemm.testing import reference_quantize_activations
    g = torch.Generator(device="cuda").manual_seed(m + k)
    x = (torch.randn(m, k, device="cuda", generator=g) * 3).to(act)
    x[0, : k // 2] *= 1000
    if m > 2:
        x[1] = 0  # an all-zero row: scale 1
        x[2, -1] = float("nan")  # a NaN: its row's scale is NaN, so that token's outputs are NaN
    xq, s = mixgemm.quantize_activations(x, "s8")
    rq, rs = reference_quantize_activations(x, "s8")
    assert xq.dtype == torch.int8 and s.dtype == torch.float32 and xq.shape == x.shape and s.shape == (m,)
    assert torch.equal(s.nan_to_num(-1), rs.nan_to_num(-1))
    assert torch.equal(xq[s.isfinite()], rq[rs.isfinite()])
    if m > 2:
        assert s[1].item() == 1.0 and not xq[1].any() and s[2].isnan()
    assert (xq.abs().amax(dim=-1)[x.float().abs().amax(dim=-1) > 0] == 127).all()


@needs_s8xs4
@pytest.mark.parametrize("out", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [1, 16, 33, 300, 2048])
def test_integer_w4a8_end_to_end(out, m):
    """gemm(xq, pw, x_scale) against the fp32 reference of the quantized operands (bias fused), and the
    end-to-end error against the unquantized x and weight, reported and loosely bounded."""
    n, k = 2048, 4096
    g = torch.Generator(device="cuda").manual_seed(m)
    w = torch.randn(n, k, device="cuda", generator=g) * 0.02
    pw = mixgemm.quantize(w, "s4", mixgemm.PER_CHANNEL, act_dtype=torch.int8)
    assert pw.layout == "w4_kmajor"
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    xq, xs = mixgemm.quantize_activations(x, "s8")
    bias = torch.randn(n, device="cuda", dtype=out)
    try:
        y = mixgemm.gemm(xq, pw, x_scale=xs, bias=bias, out_dtype=out)
    except ValueError as e:
        if "no built" in str(e):
            pytest.skip(f"no s8 x s4 kernel writing {out} built")
        raise
    assert y.dtype == out and y.shape == (m, n)
    assert_close_to_reference(y, reference(xq, pw, bias=bias, x_scale=xs), f"M={m} out={out}")
    end_to_end = relative_error(y.float() - bias.float(), x.float() @ w.t())
    print(f"integer W4A8 M={m}: relative error against unquantized x and w {end_to_end:.3e}")
    assert end_to_end < 0.2  # s4 per-channel weights dominate (~0.12 for normal weights)


@needs_s8xs4
def test_integer_w4a8_bad_input_is_refused_before_launch():
    pw = mixgemm.quantize(torch.randn(256, 1024, device="cuda"), "s4", mixgemm.PER_CHANNEL, act_dtype=torch.int8)
    x = torch.randn(4, 1024, device="cuda", dtype=torch.bfloat16)
    xq, xs = mixgemm.quantize_activations(x, "s8")
    with pytest.raises(ValueError, match="s8"):
        mixgemm.gemm(x, pw)  # 16-bit x for an s8-activation weight
    with pytest.raises(ValueError, match="x_scale"):
        mixgemm.gemm(xq, pw)
    with pytest.raises(ValueError, match="x_scale"):
        mixgemm.gemm(xq, pw, x_scale=xs.double())
    e4, e4s = mixgemm.quantize_activations(x, "e4m3")
    with pytest.raises(ValueError, match="s8"):
        mixgemm.gemm(e4, pw, x_scale=e4s)
    with pytest.raises(ValueError, match="dtype"):
        mixgemm.quantize_activations(x, "s4")


# ---- the group-scaled Ampere family (sm80g): 4-/8-bit weights with group scales (and zero points) x bf16/f16 ----
def sm80g_built() -> list[str]:
    if not mixgemm._lib.available():
        return []
    return [n for n in mixgemm.kernels() if n.startswith("mixgemm_sm80g_")]


@pytest.mark.parametrize("name", sm80g_built())
def test_group_kernel_k_tails_small_groups_and_bias(name):
    """Shapes the registry suites do not reach: K not a multiple of the 64-wide stage (zero-filled
    tail), groups of 16 and 32 (a stage spans several), N below one tile, per-channel; bias fused. The
    weights are made for sm86 (quantize(arch=86)), whose layout rule takes K % 16 == 0."""
    from mixgemm.quant import torch_dtype
    spec = KernelSpec.parse(name)
    act = torch_dtype(spec.act)
    for n, k, g in [(48, 1040, 16), (272, 2080, 32), (1024, 4096, -1), (4112, 1104, 48)]:
        gen = torch.Generator(device="cuda").manual_seed(n + k)
        w = torch.randn(n, k, device="cuda", generator=gen) * 0.02
        pw = mixgemm.quantize(w, spec.weight.short, g, act_dtype=act, layout=spec.layout, arch=86)
        bias = torch.randn(n, device="cuda", dtype=act)
        for m in (1, 65, 300):
            x = torch.randn(m, k, device="cuda", dtype=act, generator=gen)
            out = poisoned_output(spec, m, n)
            launch_kernel(name, x, pw, out, bias=bias)
            assert_close_to_reference(out, reference(x, pw, bias=bias), f"{name} N={n} K={k} g={g} M={m}")


@pytest.mark.parametrize("weight, group", [("s4", 128), ("u4", 64), ("s8", 128), ("u8", 32), ("e4m3", -1)])
@pytest.mark.parametrize("act", [torch.bfloat16, torch.float16])
def test_ampere_dispatch_serves_every_m(weight, group, act, monkeypatch):
    """As on an sm86 GPU (dispatch_as): one packed weight serves every M, the decode family up to its
    token tile and this family beyond (the only candidate there); results match the reference."""
    from mixgemm import dispatch
    act_short = "bf16" if act == torch.bfloat16 else "f16"
    if not any(KernelSpec.parse(nm).act.short == act_short and KernelSpec.parse(nm).weight.short == weight
               for nm in sm80g_built()):
        pytest.skip(f"no sm80g kernel for {weight} x {act_short} built")
    n, k = 1024, 2048
    gen = torch.Generator(device="cuda").manual_seed(5)
    pw = mixgemm.quantize(torch.randn(n, k, device="cuda", generator=gen) * 0.02, weight, group, act_dtype=act,
                          arch=86)
    assert pw.layout.endswith("_mma16_shuffled")
    with dispatch.dispatch_as(86):
        for m in (1, 16, 64, 65, 256, 2048):
            x = torch.randn(m, k, device="cuda", dtype=act, generator=gen)
            choice = mixgemm.explain(x, pw).choice
            assert choice.spec.token in ("dec", "sm80g"), choice.spec.name()
            if m > 64:
                assert choice.spec.token == "sm80g", f"M={m}: {choice.spec.name()}"
            y = mixgemm.gemm(x, pw)
            assert_close_to_reference(y, reference(x, pw), f"{weight} g{group} M={m} via {choice.spec.name()}")
    assert dispatch.capability(0) == dispatch._device_capability(0)  # restored on exit


def test_group_kernel_bad_input_is_refused_before_launch():
    names = [n for n in sm80g_built() if "xs4_" in n and n.startswith("mixgemm_sm80g_bf16")]
    if not names:
        pytest.skip("no sm80g bf16 x s4 kernel built")
    pw = mixgemm.quantize(torch.randn(256, 1024, device="cuda"), "s4", 128, arch=86)
    x = torch.randn(70, 1024, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(70, 256, device="cuda", dtype=torch.bfloat16)
    with pytest.raises((ValueError, RuntimeError), match="split_k"):
        launch_kernel(names[0], x, pw, out, split_k=2)
    with pytest.raises(ValueError, match="out_dtype"):
        mixgemm.gemm(x, pw, kernel=names[0], out_dtype=torch.float16)
    with pytest.raises(ValueError, match="arch"):
        with mixgemm.dispatch.dispatch_as("sm86"):
            pass
