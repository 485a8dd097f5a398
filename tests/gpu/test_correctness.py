"""Issue-3 coverage: M over every tile boundary, awkward N and K, padding, edge values, NaN/Inf,
fp16 overflow, CUDA graphs, torch.compile, streams and determinism."""
from __future__ import annotations

import pytest
import torch

import mixgemm
from mixgemm.generator import KernelSpec
from mixgemm.quant import torch_dtype
from mixgemm.testing import assert_close_to_reference, kernel_inputs, launch_kernel, kernel_weight, poisoned_output, reference

pytestmark = pytest.mark.gpu

M_BOUNDARIES = (1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 4097)
FORMATS = [(w, a) for w in sorted(mixgemm.FORMATS) for a in ("bf16", "f16")]


def built():
    return mixgemm.kernels() if mixgemm._lib.available() else []


def make(n, k, weight="s4", act="bf16", group_size=128, pad=False, seed=0, scale=0.02):
    g = torch.Generator(device="cuda").manual_seed(seed)
    w = torch.randn(n, k, device="cuda", generator=g) * scale
    return mixgemm.quantize(w, weight, group_size, act_dtype=torch_dtype(act), pad=pad)


@pytest.mark.parametrize("name", built())
def test_m_over_every_tile_boundary(name):
    spec = KernelSpec.parse(name)
    pw = kernel_weight(spec, 576, 1792)
    for m in [m for m in M_BOUNDARIES if spec.max_m() is None or m <= spec.max_m()]:
        x, xs = kernel_inputs(spec, m, 1792)
        out = poisoned_output(spec, m, 576)
        launch_kernel(name, x, pw, out, x_scale=xs)
        assert_close_to_reference(out, reference(x, pw, x_scale=xs), f"{name} M={m}")


@pytest.mark.parametrize("weight, act", FORMATS)
@pytest.mark.parametrize("n, k, g", [(576, 1792, 128), (2736, 3584, 128), (7392, 1792, 64), (8, 8192, -1),
                                     (4096, 32768, 128), (1024, 3584, -1)])
def test_awkward_shapes(weight, act, n, k, g):
    pw = make(n, k, weight, act, g, pad=n % 16 != 0)
    for m in (1, 33, 257):
        x = torch.randn(m, k, device="cuda", dtype=torch_dtype(act))
        y = mixgemm.gemm(x, pw)
        assert y.shape == (m, n)
        assert_close_to_reference(y, reference(x, pw), f"{weight}x{act} N={n} K={k} g={g} M={m}")


@pytest.mark.parametrize("weight, act", FORMATS)
def test_kernels_multiply_by_exactly_the_dequantized_weights(weight, act):
    """x = one-hot rows picks single weight columns: y must equal dequantize(pw)'s columns bit for bit
    (one product per output, accumulated in fp32 and rounded to act, which the dequantized value
    already is). Half the columns are tiny against their group's largest value, so 8-bit float
    weights take subnormal codes there, and integer ones small values."""
    n, k = 256, 512
    g = torch.Generator(device="cuda").manual_seed(3)
    w = torch.randn(n, k, device="cuda", generator=g)
    w[:, 1::2] *= 1e-5
    pw = mixgemm.quantize(w, weight, 128, act_dtype=torch_dtype(act))
    wq = mixgemm.dequantize(pw)
    for m in (1, 16, 64, 300):
        cols = torch.randperm(k, device="cuda", generator=g)[:m] if m <= k else None
        x = torch.zeros(m, k, device="cuda", dtype=torch_dtype(act))
        x[torch.arange(m, device="cuda"), cols] = 1
        y = mixgemm.gemm(x, pw)
        kernel = mixgemm.explain(x, pw).choice.spec.name()
        assert torch.equal(y, wq[:, cols].t()), f"{weight} x {act} M={m} ({kernel}): not the dequantized weights"


@pytest.mark.parametrize("n, k, g", [(8, 256, 128), (2736, 7392, 128), (100, 1000, 64), (4104, 14336 // 8 + 8, -1)])
def test_pad_runs_any_shape(n, k, g):
    with pytest.raises(ValueError, match="pad=True"):
        make(n, k, group_size=g)
    pw = make(n, k, group_size=g, pad=True)
    bias = torch.randn(n + 1, device="cuda", dtype=torch.bfloat16)[1:]  # an offset view: copied to align
    for m in (1, 17, 300):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        y = mixgemm.gemm(x, pw)
        assert y.shape == (m, n)
        assert_close_to_reference(y, reference(x, pw), f"pad N={n} K={k} g={g} M={m}")
        yb = mixgemm.gemm(x, pw, bias=bias)  # padded to the kernel's N inside gemm
        assert_close_to_reference(yb, reference(x, pw) + bias.float(), f"pad+bias N={n} K={k} g={g} M={m}")


@pytest.mark.parametrize("weight", ["s4", "s8"])
@pytest.mark.parametrize("act", ["bf16", "f16"])
@pytest.mark.parametrize("case", ["negative", "tiny", "huge", "zero"])
def test_edge_scales(weight, act, case):
    """Negative, tiny, huge and zero scales give what the dense GEMM on the dequantized weight gives:
    the same non-finite pattern, and the same values where finite."""
    pw = make(1024, 1024, weight, act)
    qmax = mixgemm.FORMATS[weight].qmax
    s = pw.scales
    if case == "negative":
        s.neg_()
    elif case == "tiny":
        s.fill_(1e-7 if act == "f16" else 1e-30)
    elif case == "huge":
        s.fill_(3.2e4 / qmax if act == "f16" else 1e30)  # fp16: |q * s| <= 3.2e4 stays finite
    else:
        s[::2].zero_()
    x = torch.randn(33, 1024, device="cuda", dtype=torch_dtype(act)) * (1e-3 if case == "huge" else 1)
    y = mixgemm.gemm(x, pw)
    ref = reference(x, pw)
    finite = torch.isfinite(ref.to(y.dtype))
    assert torch.equal(torch.isfinite(y), finite), case
    assert finite.any() and ref[finite].abs().max() > 0, f"{case}: the case must leave finite, nonzero outputs"
    assert_close_to_reference(torch.where(finite, y, 0), torch.where(finite, ref, 0), f"scales {case}")


@pytest.mark.parametrize("weight", ["u4", "u8"])
@pytest.mark.parametrize("act", ["bf16", "f16"])
def test_zero_points_at_the_ends(weight, act):
    qmax = mixgemm.FORMATS[weight].qmax
    w = torch.rand(512, 1024, device="cuda") * 0.1  # all positive: zero point 0
    w[256:] -= 0.1                                      # all negative: zero point qmax
    pw = mixgemm.quantize(w, weight, 128, act_dtype=torch_dtype(act))
    z = -(pw.zeros.float() / pw.scales.float())
    assert torch.allclose(z[:, :256], torch.zeros(1, device="cuda"), atol=1e-2)
    assert torch.allclose(z[:, 256:], torch.full((1,), float(qmax), device="cuda"), rtol=1e-2)
    x = torch.randn(17, 1024, device="cuda", dtype=torch_dtype(act))
    assert_close_to_reference(mixgemm.gemm(x, pw), reference(x, pw), f"zero points 0 and {qmax}")


@pytest.mark.parametrize("weight", ["s4", "s8"])
@pytest.mark.parametrize("act", ["bf16", "f16"])
def test_nan_and_inf_propagate_like_a_dense_gemm(weight, act):
    pw = make(1024, 2048, weight, act)
    x = torch.randn(8, 2048, device="cuda", dtype=torch_dtype(act))
    x[2, 5] = float("nan")
    x[5, 7] = float("inf")
    y = mixgemm.gemm(x, pw)
    dense = x @ mixgemm.dequantize(pw).t()
    assert y[2].isnan().all() and dense[2].isnan().all()
    assert torch.equal(y[5].isnan() | y[5].isinf(), torch.ones_like(y[5], dtype=torch.bool))
    others = [0, 1, 3, 4, 6, 7]
    assert torch.isfinite(y[others]).all()


def test_fp16_overflow_behaves_like_torch():
    pw = make(1024, 4096, "s4", "f16", scale=1.0)
    x = torch.randn(16, 4096, device="cuda", dtype=torch.float16) * 600
    ref32 = reference(x, pw)
    y = mixgemm.gemm(x, pw)
    torch_y = x @ mixgemm.dequantize(pw).t()
    clear = (ref32.abs() < 65504 * 0.99) | (ref32.abs() > 65520 * 1.01)  # away from the rounding edge
    assert torch.isinf(torch_y).any(), "the case must overflow"
    assert torch.equal(torch.isinf(y)[clear], torch.isinf(torch_y)[clear])


def test_cuda_graph_capture_and_replay():
    pw = make(6144, 4096, "s4", "bf16")
    for m in (1, 16, 300):
        static_x = torch.randn(m, 4096, device="cuda", dtype=torch.bfloat16)
        eager = mixgemm.gemm(static_x, pw)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            mixgemm.gemm(static_x, pw)  # warm-up on the side stream, as torch recommends
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = mixgemm.gemm(static_x, pw)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(static_y, eager), m
        fresh = torch.randn_like(static_x)
        static_x.copy_(fresh)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(static_y, mixgemm.gemm(fresh, pw)), m


def test_opcheck_and_torch_compile():
    pw = make(2048, 1024, "u4", "bf16")
    x = torch.randn(8, 1024, device="cuda", dtype=torch.bfloat16)
    torch.library.opcheck(torch.ops.mixgemm.gemm.default,
                          (x, pw.data, pw.scales, pw.zeros, 2048, 1024, pw.group_size, pw.layout, pw.weight_dtype, ""))
    layer = mixgemm.nn.QuantLinear(pw, torch.randn(2048, device="cuda", dtype=torch.bfloat16))
    compiled = torch.compile(layer, fullgraph=True)
    for m in (8, 33):
        x = torch.randn(m, 1024, device="cuda", dtype=torch.bfloat16)
        assert torch.equal(compiled(x), layer(x))


def test_deterministic_and_batch_invariant():
    pw = make(6144, 4096, "s4", "bf16")
    x = torch.randn(512, 4096, device="cuda", dtype=torch.bfloat16)
    a, b = mixgemm.gemm(x, pw, deterministic=True), mixgemm.gemm(x, pw, deterministic=True)
    assert torch.equal(a, b), "same inputs must give bit-identical outputs"
    # deterministic kernels reduce K in one order whatever the tile, so a row's result does not
    # depend on the batch it is in; deterministic=True dispatch only picks them, at every M
    specs = [KernelSpec.parse(n) for n in mixgemm.kernels()]
    sm90 = [s for s in specs if s.deterministic and s.act.short == "bf16" and s.weight.short == "s4"]
    assert sm90
    for s in sm90:
        assert torch.equal(mixgemm.gemm(x[:1], pw, kernel=s.name())[0], a[0]), s.name()
    for m in (1, 7, 16):
        assert torch.equal(mixgemm.gemm(x[:m], pw, deterministic=True), a[:m]), m
        assert mixgemm.explain(x[:m], pw).choice is not None


def test_every_kernel_is_reproducible_run_to_run():
    """Kernels that split K reduce the slices in a fixed order: bit-identical results every run."""
    pw = make(1024, 14336, "s4", "bf16")
    for name in [n for n in built() if KernelSpec.parse(n).act.short == "bf16" and KernelSpec.parse(n).weight.short == "s4"]:
        spec = KernelSpec.parse(name)
        m = min(spec.max_m() or 16, 16)
        x = torch.randn(m, 14336, device="cuda", dtype=torch.bfloat16)
        runs = [mixgemm.gemm(x, pw, kernel=name) for _ in range(5)]
        assert all(torch.equal(r, runs[0]) for r in runs), name


@pytest.mark.parametrize("act", ["bf16", "f16"])
def test_one_weight_serves_both_activation_dtypes(act):
    w = torch.randn(2048, 1024, device="cuda") * 0.02   # float32: scales stored as bf16
    pw = mixgemm.quantize(w, "u4", 128)
    for m in (1, 16, 100):
        x = torch.randn(m, 1024, device="cuda", dtype=torch_dtype(act))
        y = mixgemm.gemm(x, pw)
        assert y.dtype == x.dtype
        assert_close_to_reference(y, reference(x, pw), f"{act} M={m}")


def test_explain_says_why(monkeypatch):
    pw = make(6144, 4096, "s4", "bf16")
    x = torch.randn(4, 4096, device="cuda", dtype=torch.bfloat16)
    text = str(mixgemm.explain(x, pw))
    assert "pick:" in text and "candidates" in text and ("(profile" in text or "(fallback)" in text)
    monkeypatch.setenv("MIXGEMM_PROFILE", "")
    mixgemm.profiles.load_for.cache_clear()
    mixgemm.dispatch._autotuned.clear()
    assert "(fallback)" in str(mixgemm.explain(x, pw))
    mixgemm.profiles.load_for.cache_clear()


def _forget_choices():
    mixgemm.profiles.load_for.cache_clear()
    mixgemm.dispatch._autotuned.clear()
    mixgemm.dispatch._cache.clear()
    mixgemm.ops._launches.clear()


def test_autotune_on_first_use_for_uncovered_shapes(monkeypatch):
    """Without a profile entry near the shape, the first eager call times the likeliest candidates
    and later calls (and explain) use the fastest; never while capturing; off with MIXGEMM_AUTOTUNE=0."""
    monkeypatch.setenv("MIXGEMM_PROFILE", "")
    _forget_choices()
    try:
        pw = make(2816, 1792, "s4", "bf16")
        x = torch.randn(48, 1792, device="cuda", dtype=torch.bfloat16)
        assert mixgemm.explain(x, pw).choice.source == "fallback"
        monkeypatch.setenv("MIXGEMM_AUTOTUNE", "0")
        assert_close_to_reference(mixgemm.gemm(x, pw), reference(x, pw), "autotune off")
        assert mixgemm.explain(x, pw).choice.source == "fallback"
        monkeypatch.setenv("MIXGEMM_AUTOTUNE", "1")
        _forget_choices()
        # captured first: nothing is timed, the estimate serves the graph, and nothing is remembered
        static_x = x.clone()
        graph = torch.cuda.CUDAGraph()
        mixgemm.gemm(static_x[:1], pw)  # warm-up of another M bucket (and of the library)
        with torch.cuda.graph(graph):
            y_graph = mixgemm.gemm(static_x, pw)
        graph.replay()
        torch.cuda.synchronize()
        assert_close_to_reference(y_graph, reference(x, pw), "captured")
        assert mixgemm.explain(x, pw).choice.source == "fallback"
        # eager: timed once, remembered for the M bucket (33..64), correct
        y = mixgemm.gemm(x, pw)
        assert_close_to_reference(y, reference(x, pw), "autotuned")
        exp = mixgemm.explain(x, pw)
        assert exp.choice.source == "autotuned on first use", str(exp)
        assert exp.choice.estimate_us is not None and exp.choice.estimate_us > 0
        x2 = torch.randn(40, 1792, device="cuda", dtype=torch.bfloat16)
        assert mixgemm.explain(x2, pw).choice.spec == exp.choice.spec
        assert_close_to_reference(mixgemm.gemm(x2, pw), reference(x2, pw), "same bucket")
    finally:
        _forget_choices()


def test_nearby_profile_shape_is_confirmed_by_timing():
    """The shipped profile covers 4096x4096, not 4608x3584: its pick transfers as a prior and the
    first eager call times it against the model's candidates."""
    _forget_choices()
    try:
        pw = make(4608, 3584, "s4", "bf16")
        x = torch.randn(64, 3584, device="cuda", dtype=torch.bfloat16)
        first = mixgemm.explain(x, pw).choice
        if not first.source.startswith("profile nearest"):
            pytest.skip(f"no nearby profile entry on this GPU ({first.source})")
        assert first.tentative
        assert_close_to_reference(mixgemm.gemm(x, pw), reference(x, pw), "nearest, timed")
        assert mixgemm.explain(x, pw).choice.source == "autotuned on first use"
    finally:
        _forget_choices()


def test_weight_on_the_wrong_device_and_deterministic_flag():
    pw = make(1024, 1024, "s4", "bf16")
    x = torch.randn(4, 1024, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="pw is on cpu"):
        mixgemm.gemm(x, pw.to("cpu"))
    det = mixgemm.gemm(x, pw.to("cuda"), deterministic=True)
    assert torch.equal(det, mixgemm.gemm(x, pw, deterministic=True))
    assert_close_to_reference(mixgemm.gemm(x, pw), reference(x, pw), "default dispatch")
    assert_close_to_reference(det, reference(x, pw), "deterministic dispatch")


def test_projections_of_one_x_read_it_early_and_stay_correct(monkeypatch):
    """q, k, v and gate, up of one x: once a weight was read by an earlier launch on the stream, its
    launches say so (MIXGEMM_FLAG_WEIGHTS_READY, 2), and every launch after the first of one x also
    says that x is ready (MIXGEMM_FLAG_INPUTS_READY, 1), so decode kernels read them while the
    previous kernel finishes. Results match the reference eagerly, after x or a weight changes in
    place (its flag drops for one launch), and in a replayed CUDA graph whose input is refilled
    between replays."""
    weights = [make(n, 2048, "s4", "bf16", seed=i) for i, n in enumerate((2048, 512, 512, 4096, 4096))]
    lib = mixgemm.ops._lib.load()
    flags = []

    class Recorder:
        def __getattr__(self, name):
            return getattr(lib, name)

        def run(self, *args):
            flags.append(args[8])  # (index, base, x, y, m, workspace, workspace_bytes, stream, flags, bias)
            return lib.run(*args)

    monkeypatch.setattr(mixgemm.ops._lib, "load", lambda: Recorder())
    monkeypatch.setenv("MIXGEMM_AUTOTUNE", "0")  # its timing launches would interleave here
    mixgemm.ops._last_x.clear()
    mixgemm.ops._seen_weights.clear()
    w, both = lib.FLAG_WEIGHTS_READY, lib.FLAG_WEIGHTS_READY | lib.FLAG_INPUTS_READY
    for m in (1, 16):
        x = torch.randn(m, 2048, device="cuda", dtype=torch.bfloat16)
        flags.clear()
        for pw in weights:
            assert_close_to_reference(mixgemm.gemm(x, pw), reference(x, pw), f"M={m}")
        assert flags == ([0] * 5 if m == 1 else [w] + [both] * 4), flags  # first use of each weight: no flag
        x.mul_(-0.5)  # in place: the version counter changes, so the next launch waits for x again
        flags.clear()
        for pw in weights:
            assert_close_to_reference(mixgemm.gemm(x.view(m, 2048), pw), reference(x, pw), f"M={m} after mul_")
        assert flags == [w] + [both] * 4, flags
        weights[2].scales.mul_(2.0)  # a weight changed in place: its next launch waits for everything
        flags.clear()
        for pw in weights:
            assert_close_to_reference(mixgemm.gemm(x, pw), reference(x, pw), f"M={m} after scales.mul_")
        assert flags == [both, both, 0, both, both], flags
        with torch.inference_mode():  # no version counter: x never flagged (the weights still are)
            xi = torch.randn(m, 2048, device="cuda", dtype=torch.bfloat16)
            flags.clear()
            for pw in weights[:2]:
                assert_close_to_reference(mixgemm.gemm(xi, pw), reference(xi, pw), f"M={m} inference")
            assert flags == [w, w], flags
        static = torch.randn(m, 2048, device="cuda", dtype=torch.bfloat16)
        for pw in weights:
            mixgemm.gemm(static, pw)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        flags.clear()
        with torch.cuda.graph(graph):  # another stream: weights used before count as ready there too
            ys = [mixgemm.gemm(static, pw) for pw in weights]
        assert flags == [w] + [both] * 4, flags
        for trial in range(3):
            static.copy_(torch.randn_like(static))
            graph.replay()
            torch.cuda.synchronize()
            for y, pw in zip(ys, weights):
                assert_close_to_reference(y, reference(static, pw), f"M={m} graph replay {trial}")
