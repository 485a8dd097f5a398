"""W4A8 (family sm90w4a8): s4 weights with e4m3 group scales and fp32 per-channel scales x e4m3
activations quantized per token. The GEMM against an fp32 reference from the dequantized weights
(what the lookup-table conversion yields: channel * e4m3(g * q)) and the quantized-then-dequantized
activations; against the unquantized activations and weights (reported, loosely bounded); the
lookup tables the kernels read against the values dequantize() states; bad input refused before
launch. The registry-driven suites (test_correctness, test_gemm, test_forward_progress) run every
built W4A8 kernel through their cases too."""
from __future__ import annotations

import pytest
import torch

import mixgemm
from mixgemm.testing import assert_close_to_reference, reference, relative_error

pytestmark = pytest.mark.gpu
FP8 = torch.float8_e4m3fn
PREFIX = "mixgemm_sm90w4a8_"


def w4a8_built() -> bool:
    return mixgemm._lib.available() and any(n.startswith(PREFIX) for n in mixgemm.kernels())


needs_w4a8 = pytest.mark.skipif(not w4a8_built(), reason="no sm90w4a8 kernel built")


def weight(n, k, group_size=128, seed=0, pad=False):
    g = torch.Generator(device="cuda").manual_seed(seed)
    w = torch.randn(n, k, device="cuda", generator=g) * 0.02
    w[: n // 4] *= 10  # channels of different magnitudes: the per-channel scale carries them
    return w, mixgemm.quantize(w, "s4", group_size, act_dtype=FP8, pad=pad)


@needs_w4a8
@pytest.mark.parametrize("out", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("n, k, g", [(576, 1792, 128), (4096, 4096, 128), (2736, 3584, 256), (1024, 14336, -1),
                                     (768, 8192, 1024)])
def test_gemm_end_to_end(out, n, k, g):
    w, pw = weight(n, k, g, seed=n)
    bias = torch.randn(n, device="cuda", dtype=out)
    for m in (1, 7, 16, 17, 64, 65, 256, 257, 1000, 4097):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        xq, xs = mixgemm.quantize_activations(x)
        y = mixgemm.gemm(xq, pw, x_scale=xs, out_dtype=out, bias=bias)
        assert y.dtype == out and y.shape == (m, n)
        assert_close_to_reference(y, reference(xq, pw, bias, x_scale=xs), f"w4a8 N={n} K={k} g={g} M={m} {out}")
        # what 4-bit weights and 8-bit activations cost against the unquantized layer (reported in the
        # closing note; bounded loosely so a wrong scale or group still fails)
        e2e = relative_error(y, x.float() @ w.t() + bias.float())
        assert e2e < 0.2, f"end-to-end error {e2e:.3f} at M={m}"


@needs_w4a8
def test_every_kernel_forced_with_bias_and_both_outputs():
    _, pw = weight(2048, 1024, seed=5)
    for name in [n for n in mixgemm.kernels() if n.startswith(PREFIX)]:
        spec = mixgemm.generator.KernelSpec.parse(name)
        out = torch.float16 if spec.out.short == "f16" else torch.bfloat16
        bias = torch.randn(2048, device="cuda", dtype=out)
        for m in (1, 33, 300):
            x = torch.randn(m, 1024, device="cuda", dtype=torch.bfloat16)
            xq, xs = mixgemm.quantize_activations(x)
            y = mixgemm.gemm(xq, pw, x_scale=xs, out_dtype=out, bias=bias, kernel=name)
            assert_close_to_reference(y, reference(xq, pw, bias, x_scale=xs), f"{name} M={m}")


@needs_w4a8
def test_dispatch_explain_pad_batched_state_dict_and_pack():
    w, pw = weight(1000, 1000, seed=2, pad=True)  # N to a multiple of 16, K to one of 128
    x = torch.randn(2, 5, 1000, device="cuda", dtype=torch.bfloat16)
    xq, xs = mixgemm.quantize_activations(x)
    y = mixgemm.gemm(xq, pw, x_scale=xs)
    assert y.shape == (2, 5, 1000) and y.dtype == torch.bfloat16
    assert_close_to_reference(y, reference(xq, pw, x_scale=xs), "padded, batched")
    exp = mixgemm.explain(xq, pw, x_scale=xs)
    assert exp.choice is not None and exp.choice.spec.token == "sm90w4a8", str(exp)
    again = mixgemm.PackedWeight.from_state_dict(pw.state_dict())
    assert again.layout == pw.layout and torch.equal(mixgemm.gemm(xq, again, x_scale=xs), y)
    assert torch.equal(mixgemm.dequantize(again), mixgemm.dequantize(pw))
    fresh = mixgemm.quantize(torch.zeros(1000, 1000, device="cuda"), "s4", 128, act_dtype=FP8, pad=True)
    fresh.load_state_dict(pw.state_dict())  # tables rebuilt from the loaded group scales
    assert torch.equal(mixgemm.gemm(xq, fresh, x_scale=xs), y)
    # a GPTQ-style checkpoint: integer values and 16-bit scales, made two-level at pack time
    q = torch.randint(-8, 8, (512, 1024), device="cuda")
    s = torch.rand(512, 8, device="cuda", dtype=torch.float16) * 0.01 + 1e-3
    packed = mixgemm.pack(q, s, weight_dtype="s4", act_dtype=FP8)
    xq2, xs2 = mixgemm.quantize_activations(torch.randn(3, 1024, device="cuda", dtype=torch.bfloat16))
    assert_close_to_reference(mixgemm.gemm(xq2, packed, x_scale=xs2), reference(xq2, packed, x_scale=xs2), "pack")
    intended = q.float() * s.float().repeat_interleave(128, dim=1)
    assert relative_error(mixgemm.dequantize(packed), intended) < 0.05  # e4m3 group scales and products


@needs_w4a8
def test_graph_compile_nan_rows_and_no_scale():
    _, pw = weight(2048, 1024, seed=3)
    x = torch.randn(8, 1024, device="cuda", dtype=torch.bfloat16)

    def layer(x):
        xq, xs = mixgemm.quantize_activations(x)
        return mixgemm.gemm(xq, pw, x_scale=xs)

    eager = layer(x)
    static = x.clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y_graph = layer(static)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(y_graph, eager)
    compiled = torch.compile(layer, fullgraph=True)
    assert torch.equal(compiled(x), eager)
    xq, xs = mixgemm.quantize_activations(x)
    torch.library.opcheck(mixgemm.ops.gemm_op, (xq, pw.data, pw.scale_tables, None, 2048, 1024, 128, pw.layout, "s4",
                                                "", False, None, xs, torch.bfloat16, pw.channel_scales),
                          test_utils="test_faketensor")
    bad = x.clone()
    bad[3, 5] = float("nan")
    y = layer(bad)
    assert y[3].isnan().all() and not y[torch.arange(8) != 3].isnan().any()
    # convert only: integer weights multiply exactly (tables of 32 * q, channel scale 1/32)
    q = torch.randint(-8, 8, (256, 512), device="cuda").float()
    exact = mixgemm.quantize(q, "s4", mixgemm.NO_SCALE, act_dtype=FP8)
    assert torch.equal(mixgemm.dequantize(exact), q)
    x8, s8 = mixgemm.quantize_activations(torch.randn(4, 512, device="cuda", dtype=torch.bfloat16))
    assert_close_to_reference(mixgemm.gemm(x8, exact, x_scale=s8), reference(x8, exact, x_scale=s8), "no scale")


@needs_w4a8
def test_bad_input_is_refused_before_launch():
    _, pw = weight(512, 1024)
    x = torch.randn(4, 1024, device="cuda", dtype=torch.bfloat16)
    xq, xs = mixgemm.quantize_activations(x)
    with pytest.raises(ValueError, match="x_scale"):
        mixgemm.gemm(xq, pw)
    with pytest.raises(ValueError, match=r"x_scale must be a float32 tensor of shape \(4,\)"):
        mixgemm.gemm(xq, pw, x_scale=xs[:3])
    with pytest.raises(ValueError, match="quantize_activations"):
        mixgemm.gemm(x, pw)  # 16-bit x with a W4A8 weight
    with pytest.raises(ValueError, match="weight_dtype='s4' for W4A8"):
        mixgemm.gemm(xq, mixgemm.quantize(torch.randn(512, 1024, device="cuda"), "s4"), x_scale=xs)
    with pytest.raises(TypeError, match="not supported"):
        mixgemm.gemm(xq.view(torch.uint8).view(torch.float8_e5m2), pw, x_scale=xs)
    with pytest.raises(ValueError, match="multiple of 128"):
        mixgemm.quantize(torch.randn(512, 1024, device="cuda"), "s4", 64, act_dtype=FP8)
    with pytest.raises(ValueError, match="do not convert"):
        pw.to_layout("w4_mma16_shuffled")
    with pytest.raises(TypeError, match="W4A8"):
        pw.scales_for(torch.bfloat16)
    # the C entry refuses what Python would have caught too
    lib = mixgemm._lib.load()
    y = torch.empty(4, 512, device="cuda", dtype=torch.bfloat16)
    for name in [n for n in mixgemm.kernels() if n.startswith(PREFIX)]:
        idx = mixgemm.kernels().index(name)
        p = lib.Problem()
        p.x, p.w, p.scales, p.y = xq.data_ptr(), pw.data.data_ptr(), pw.scale_tables.data_ptr(), y.data_ptr()
        p.m, p.n, p.k, p.group_size = 4, 512, 1024, 128
        p.x_scales = xs.data_ptr()
        status, msg = lib.check(idx, p)
        assert status != 0 and "w_scales" in msg, name
        p.w_scales = pw.channel_scales.data_ptr()
        assert lib.check(idx, p) == (0, ""), name
        p.group_size = 64
        status, msg = lib.check(idx, p)
        assert status != 0 and "group_size" in msg, name
        p.group_size, p.x_scales = 128, 0
        status, msg = lib.check(idx, p)
        assert status != 0 and "x_scales" in msg, name
