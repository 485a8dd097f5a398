"""Quantize / pack / dequantize on CPU tensors against plain reference math."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

import mixgemm
from mixgemm.generator.layouts import W4_MMA16
from mixgemm.quant import (FORMATS, LAYOUTS, FloatWeightFormat, mma16_permute, mma16_unpermute, pack_nibbles,
                           unpack_nibbles)


def reference_quantize(w, fmt, group_size, act):
    """Loop-free but independent statement of round-to-nearest group quantization, from the
    format's registered range."""
    n, k = w.shape
    out_q = torch.empty(n, k, dtype=torch.int64)
    scales = torch.empty(k // group_size, n, dtype=act)
    zeros = torch.empty(k // group_size, n, dtype=act) if fmt.zero_point else None
    levels = fmt.qmax - fmt.qmin
    for g in range(k // group_size):
        blk = w[:, g * group_size:(g + 1) * group_size].double()
        if fmt.zero_point:
            lo, hi = blk.min(1).values.clamp(max=0), blk.max(1).values.clamp(min=0)
            s = torch.where(hi > lo, (hi - lo) / levels, torch.ones_like(hi)).to(act)
            z = torch.clamp(torch.round(-lo / s.double()), fmt.qmin, fmt.qmax)
            zeros[g] = (-z * s.double()).to(act)
            # values are placed against the zero term as stored (rounded to act)
            q = torch.clamp(torch.round((blk - zeros[g].double()[:, None]) / s.double()[:, None]), fmt.qmin, fmt.qmax)
        else:
            amax = blk.abs().max(1).values
            s = torch.where(amax > 0, amax / fmt.qmax, torch.ones_like(amax)).to(act)
            q = torch.clamp(torch.round(blk / s.double()[:, None]), fmt.qmin, fmt.qmax)
        scales[g] = s
        out_q[:, g * group_size:(g + 1) * group_size] = q.long()
    return out_q, scales, zeros


INT_FORMATS = sorted(n for n, f in FORMATS.items() if not isinstance(f, FloatWeightFormat))
FLOAT_FORMATS = sorted(n for n, f in FORMATS.items() if isinstance(f, FloatWeightFormat))


@pytest.mark.parametrize("fmt", FLOAT_FORMATS)
@pytest.mark.parametrize("act", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("group_size", [64, -1])
def test_float8_quantize_matches_reference(fmt, act, group_size):
    """Scale = group amax / 448 (rounded to act); values are the nearest-even codes of w / scale;
    dequantize is code value * scale, rounded once."""
    torch.manual_seed(0)
    w = torch.randn(48, 256) * 0.05
    w[3, 7] = 0.0
    w[5, :] = 0.0  # an all-zero row: scale 1, codes 0
    dt = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}[fmt]
    fmax = float(torch.finfo(dt).max)
    target = 448.0  # e4m3's largest finite value, for both formats
    pw = mixgemm.quantize(w, fmt, group_size, act_dtype=act)
    g = 256 if group_size == -1 else group_size
    blocks = w.double().reshape(48, 256 // g, g)
    amax = blocks.abs().amax(-1)
    s = torch.where(amax > 0, amax / target, torch.ones_like(amax)).to(act)
    vals = (blocks / s.double()[..., None]).clamp(-fmax, fmax).float().to(dt).float().reshape(48, 256)
    torch.testing.assert_close(pw.scales, s.t().contiguous(), rtol=0, atol=0)
    got = mixgemm.unpack(pw).to(torch.int8).view(dt).float()
    assert (got != vals).float().mean() < 1e-3  # float64 vs float32 division near a tie
    exact = (got.double() * s.double().repeat_interleave(g, 1)).to(act)
    assert torch.equal(mixgemm.dequantize(pw), exact)
    assert torch.isfinite(got).all() and (mixgemm.unpack(pw)[5] == 0).all()


@pytest.mark.parametrize("fmt", INT_FORMATS)
@pytest.mark.parametrize("act", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("group_size", [64, 128, -1])
def test_quantize_matches_reference(fmt, act, group_size):
    torch.manual_seed(0)
    w = torch.randn(48, 256) * 0.05
    pw = mixgemm.quantize(w, fmt, group_size, act_dtype=act)
    g = 256 if group_size == -1 else group_size
    q, s, z = reference_quantize(w, FORMATS[fmt], g, act)
    assert pw.group_size == g and pw.per_channel == (group_size == mixgemm.PER_CHANNEL)
    assert mixgemm.unpack(pw).min() >= FORMATS[fmt].qmin and mixgemm.unpack(pw).max() <= FORMATS[fmt].qmax
    # float32 vs float64 division can round a value sitting exactly on .5 the other way
    mismatch = (mixgemm.unpack(pw).long() - q).abs()
    assert mismatch.max() <= 1 and (mismatch > 0).float().mean() < 1e-3
    torch.testing.assert_close(pw.scales, s, rtol=0, atol=0)
    if z is not None:
        torch.testing.assert_close(pw.zeros, z, rtol=0, atol=0)
    wq = mixgemm.dequantize(pw)
    assert wq.dtype == act and wq.shape == w.shape
    # dequantized weights are close to the originals: half a step, or one step where an integer zero
    # point shifts the grid and the top value clips; plus the activation dtype's rounding
    step = s.float().t().repeat_interleave(g, 1)
    bound = (1.0 if FORMATS[fmt].zero_point else 0.5) * step + 8e-3 * (w.abs() + step)
    assert ((wq.float() - w).abs() <= bound).all()


@pytest.mark.parametrize("act", [torch.bfloat16, torch.float16])
def test_dequantize_is_one_fused_multiply_add(act):
    torch.manual_seed(1)
    w = torch.randn(32, 128, dtype=act)
    pw = mixgemm.quantize(w, "u4", 64)
    q = mixgemm.unpack(pw).double()
    s = pw.scales.double().t().repeat_interleave(64, 1)
    z = pw.zeros.double().t().repeat_interleave(64, 1)
    fma = (q * s + z).to(act)  # exact in float64, rounded once
    assert torch.equal(mixgemm.dequantize(pw), fma)
    two_roundings = (q.to(act) * pw.scales.t().repeat_interleave(64, 1)) + pw.zeros.t().repeat_interleave(64, 1)
    assert not torch.equal(mixgemm.dequantize(pw), two_roundings)  # the distinction the kernels make


def test_mma16_permutation_is_a_bijection_and_inverts():
    n, k = 48, 128
    idx = torch.arange(n * k).reshape(n, k)
    flat = mma16_permute(idx)
    assert torch.equal(flat.sort().values, torch.arange(n * k))
    assert torch.equal(mma16_unpermute(flat, n, k), idx)


def test_mma16_atom_formula():
    # value (n, k) of a 16x16 atom sits at 32*(n%8) + (n//8) + 4*(k%8) + 2*(k//8); atoms column-major
    n, k = 32, 64
    idx = torch.arange(n * k).reshape(n, k)
    offsets = torch.empty(n * k, dtype=torch.long)
    offsets[mma16_permute(idx)] = torch.arange(n * k)  # offsets[value] = position
    nn, kk = torch.meshgrid(torch.arange(n), torch.arange(k), indexing="ij")
    atom = 32 * (nn % 8) + (nn // 8) % 2 + 4 * (kk % 8) + 2 * ((kk // 8) % 2)
    expect = atom + 256 * ((nn // 16) + (n // 16) * (kk // 16))
    assert torch.equal(offsets.reshape(n, k), expect)


@given(st.lists(st.integers(-8, 7), min_size=2, max_size=64).filter(lambda v: len(v) % 2 == 0))
def test_nibble_round_trip(values):
    v = torch.tensor(values, dtype=torch.int8)
    packed = pack_nibbles(v)
    assert packed.dtype == torch.uint8 and packed.numel() == len(values) // 2
    assert int(packed[0]) == (values[0] & 0xF) | ((values[1] & 0xF) << 4)
    assert torch.equal(unpack_nibbles(packed, signed=True), v)


def test_state_dict_round_trip_and_device_moves():
    w = torch.randn(32, 128, dtype=torch.float16)
    pw = mixgemm.quantize(w, "u4", 64)
    sd = pw.state_dict()
    assert set(sd) == {"data", "scales", "zeros", "_extra_state"}
    back = mixgemm.PackedWeight.from_state_dict(sd)
    assert torch.equal(mixgemm.dequantize(back), mixgemm.dequantize(pw))
    other = mixgemm.quantize(torch.randn(32, 128, dtype=torch.float16), "u4", 64)
    other.load_state_dict(sd)
    assert torch.equal(mixgemm.dequantize(other), mixgemm.dequantize(pw))
    moved = pw.to(torch.device("cpu"))
    assert moved.device.type == "cpu" and f"layout={W4_MMA16}" in repr(pw)


def test_version_1_state_dicts_load():
    pw = mixgemm.quantize(torch.randn(32, 128, dtype=torch.bfloat16), "s4", 64)
    sd = pw.state_dict()
    sd["_extra_state"] = {"shape": [32, 128], "weight_dtype": "s4", "group_size": 64,
                          "layout": "sm90_w4_mma16_shuffled", "arch": 90, "version": 1}
    back = mixgemm.PackedWeight.from_state_dict(sd)
    assert back.layout == W4_MMA16 and torch.equal(mixgemm.dequantize(back), mixgemm.dequantize(pw))
    sd["_extra_state"] = {**sd["_extra_state"], "version": 7}
    with pytest.raises(ValueError, match="version 7"):
        mixgemm.PackedWeight.from_state_dict(sd)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_one_packed_weight_serves_both_activation_dtypes(fmt):
    """A float32 weight quantizes once; bf16 and fp16 activations both use it, fp16 through scales
    converted once (exactly) on first use."""
    w = torch.randn(64, 256) * 0.05
    pw = mixgemm.quantize(w, fmt, 128)
    assert pw.scale_dtype == torch.bfloat16
    s16, z16 = pw.scales_for(torch.float16)
    assert s16.dtype == torch.float16 and torch.equal(s16.to(torch.bfloat16), pw.scales)
    assert pw.scales_for(torch.float16)[0] is s16  # converted once
    assert (z16 is None) == (not FORMATS[fmt].zero_point)
    w16 = mixgemm.dequantize(pw, torch.float16)
    assert w16.dtype == torch.float16
    assert torch.allclose(w16.float(), mixgemm.dequantize(pw).float(), rtol=1e-2, atol=1e-4)


def test_scales_that_do_not_fit_fp16_are_refused():
    pw = mixgemm.quantize(torch.randn(32, 128) * 1e6, "s4", 128)  # scales ~ 1e5 > fp16 max
    with pytest.raises(ValueError, match="do not convert exactly"):
        pw.scales_for(torch.float16)


def test_to_layout():
    pw = mixgemm.quantize(torch.randn(32, 128), "s4", 128)
    assert pw.to_layout(W4_MMA16) is pw
    with pytest.raises(ValueError, match="can be packed as"):
        pw.to_layout("w8_nothing")


@pytest.mark.parametrize("kwargs, exc, fragment", [
    (dict(w=torch.randn(32, 128, dtype=torch.float64)), TypeError, "w.dtype"),
    (dict(w=torch.randn(2, 32, 128)), ValueError, "2-D"),
    (dict(weight_dtype="s3"), ValueError, "weight_dtype"),
    (dict(group_size=100), ValueError, "group_size=100"),
    (dict(group_size=32), ValueError, "multiple of 64"),
    (dict(w=torch.randn(40, 128)), ValueError, "multiple of 16"),
    (dict(w=torch.randn(32, 96), group_size=-1), ValueError, "K of 64"),
    (dict(group_size=None), ValueError, "group_size=None"),
    (dict(arch=75), ValueError, "sm75"),
    (dict(zero_point=True), ValueError, "zero_point=True"),
    (dict(weight_dtype="u4", zero_point=False), ValueError, "zero_point=False"),
    (dict(arch="sm90"), ValueError, "arch='sm90'"),
    (dict(layout="w3_weird"), ValueError, "layout='w3_weird'"),
    (dict(act_dtype=torch.float32), TypeError, "act_dtype"),
    (dict(w=torch.full((32, 128), float("nan"))), ValueError, "NaN"),
])
def test_quantize_errors_name_the_argument(kwargs, exc, fragment):
    kw = dict(w=torch.randn(32, 128))
    kw.update(kwargs)
    with pytest.raises(exc, match=fragment.replace("(", r"\(")):
        mixgemm.quantize(**kw)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 8).map(lambda v: 16 * v), kg=st.integers(1, 4), g=st.sampled_from([64, 128, -1]),
       fmt=st.sampled_from(sorted(FORMATS)), act=st.sampled_from([torch.bfloat16, torch.float16]))
def test_quantize_any_valid_shape(n, kg, g, fmt, act):
    k = 128 * kg
    w = torch.randn(n, k)
    pw = mixgemm.quantize(w, fmt, g, act_dtype=act)
    assert pw.data.numel() == n * k * FORMATS[fmt].bits // 8
    assert pw.scales.shape == (k // pw.group_size, n)
    wq = mixgemm.dequantize(pw)
    assert wq.shape == (n, k) and torch.isfinite(wq).all()
    assert torch.equal(mixgemm.unpack(mixgemm.PackedWeight.from_state_dict(pw.state_dict())), mixgemm.unpack(pw))


@pytest.mark.parametrize("tag", sorted(LAYOUTS))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_layout_round_trips_every_format_of_its_width(tag, fmt):
    layout, f = LAYOUTS[tag], FORMATS[fmt]
    if layout.bits != f.bits or (layout.signed_only and not f.dtype.signed):
        pytest.skip(f"{tag} holds {'signed ' if layout.signed_only else ''}{layout.bits}-bit values")
    n, k = 2 * layout.n_multiple, 4 * layout.k_multiple
    q = torch.randint(f.qmin, f.qmax + 1, (n, k), dtype=torch.int16)
    data = layout.pack(q)
    assert data.dtype == torch.uint8 and data.numel() == layout.nbytes(n, k)
    assert torch.equal(layout.unpack(data, n, k, f.dtype.signed), q)


def test_arch_picks_the_shape_rule_of_the_families_there():
    w = torch.randn(32, 96)
    with pytest.raises(ValueError, match="dec, sm80g, sm90 families"):
        mixgemm.quantize(w, "s4", -1, arch=90)  # sm90 needs K % 64
    pw = mixgemm.quantize(w, "s4", -1, arch=86)  # the decode and sm80g families run on sm86: K % 16
    assert pw.padded_shape == (32, 96) and pw.layout == W4_MMA16


@pytest.mark.parametrize("n, k, g", [(8, 256, 128), (40, 100, 64), (2736, 7392, 128), (24, 7392, -1)])
def test_pad_makes_any_shape_quantizable(n, k, g):
    w = torch.randn(n, k)
    with pytest.raises(ValueError, match="pad=True"):
        mixgemm.quantize(w, "s4", g)
    pw = mixgemm.quantize(w, "s4", g, pad=True)
    pn, pk = pw.padded_shape
    assert pw.shape == (n, k) and pn % 16 == 0 and pk % 64 == 0 and pk % pw.group_size == 0
    wq = mixgemm.dequantize(pw)
    assert wq.shape == (n, k)
    # the padded tail is zero and the real part equals quantizing the padded weight
    full = mixgemm.unpack(pw)
    assert (full[n:] == 0).all() and (full[:, k:] == 0).all()
    assert ((wq.float() - w).abs() <= pw.scales.float().max() * 0.51 + 1e-2).all()


@pytest.mark.parametrize("mutate, fragment", [
    (lambda sd: sd.update(scales=sd["scales"][:-1]), "scales must be"),
    (lambda sd: sd.update(scales=sd["scales"].float()), "scales must be"),
    (lambda sd: sd.update(zeros=sd["zeros"].to(torch.float16)), "zeros must match"),
    (lambda sd: sd.update(zeros=None), "zeros must be given"),
    (lambda sd: sd.update(data=sd["data"][:-2]), "data must be uint8"),
    (lambda sd: sd["_extra_state"].update(group_size=96), "group_size=96"),
    (lambda sd: sd["_extra_state"].update(layout="sm80_whatever"), "layout"),
    (lambda sd: sd["_extra_state"].update(padded_shape=[40, 256]), "padded shape"),
])
def test_corrupt_packed_weights_are_refused(mutate, fragment):
    sd = mixgemm.quantize(torch.randn(32, 256, dtype=torch.bfloat16), "u4", 128).state_dict()
    sd["_extra_state"] = dict(sd["_extra_state"])
    mutate(sd)
    with pytest.raises(ValueError, match=fragment):
        mixgemm.PackedWeight.from_state_dict(sd)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("group_size", [64, -1])
def test_pack_takes_weights_quantized_elsewhere(fmt, group_size):
    """pack(values, scales[, zero_points]) from a quantized checkpoint's pieces ([N, K/group] scales,
    integer zero points) gives the same PackedWeight quantize makes from the float weight."""
    torch.manual_seed(5)
    w = torch.randn(48, 256) * 0.05
    pw = mixgemm.quantize(w, fmt, group_size, act_dtype=torch.bfloat16)
    f = FORMATS[fmt]
    q = mixgemm.unpack(pw)
    values = q.to(torch.int8).view(f.torch_dtype) if isinstance(f, FloatWeightFormat) else q.to(torch.int32)
    scales = pw.scales.t().float()  # a checkpoint's fp32 scales, one row per output feature
    zp = None
    if f.zero_point:  # the integer zero points quantize chose (the stored zero term is rounded)
        g = pw.group_size
        lo = w.reshape(48, 256 // g, g).amin(-1).clamp(max=0)
        zp = torch.clamp(torch.round(-lo / pw.scales.t().float()), f.qmin, f.qmax).to(torch.int32)
    packed = mixgemm.pack(values, scales, zp, weight_dtype=fmt, act_dtype=torch.bfloat16)
    assert packed.group_size == pw.group_size and packed.layout == pw.layout and packed.scales.dtype == torch.bfloat16
    assert torch.equal(packed.data, pw.data) and torch.equal(packed.scales, pw.scales)
    assert torch.equal(mixgemm.dequantize(packed), mixgemm.dequantize(pw))
    back = mixgemm.PackedWeight.from_state_dict(packed.state_dict())
    assert torch.equal(mixgemm.dequantize(back), mixgemm.dequantize(pw))


def test_pack_converts_scales_once_and_refuses_bad_pieces():
    q = torch.randint(-8, 8, (32, 128), dtype=torch.int8)
    s32 = torch.rand(32, 2) * 1e-2 + 1e-3
    pw = mixgemm.pack(q, s32, weight_dtype="s4", act_dtype=torch.float16)
    assert pw.scales.dtype == torch.float16 and torch.equal(pw.scales, s32.to(torch.float16).t())
    assert pw.group_size == 64 and mixgemm.pack(q, s32[:, 0], weight_dtype="s4").per_channel
    expect = (q.double() * s32.to(torch.float16).double().repeat_interleave(64, 1)).to(torch.float16)
    assert torch.equal(mixgemm.dequantize(pw), expect)
    for kw, fragment in [
        (dict(values=q + 8, scales=s32, weight_dtype="s4"), "outside s4's range"),
        (dict(values=q.float(), scales=s32, weight_dtype="s4"), "given as integers"),
        (dict(values=q, scales=s32[:, :1].repeat(1, 3), weight_dtype="s4"), "scales must be [N, K / group_size]"),
        (dict(values=q + 8, scales=s32, weight_dtype="u4"), "need zero_points"),
        (dict(values=q, scales=s32, zero_points=torch.zeros(32, 2), weight_dtype="s4"), "symmetric"),
        (dict(values=q + 8, scales=s32, zero_points=torch.full((32, 2), 16), weight_dtype="u4"), "zero_points must be integers in [0, 15]"),
        (dict(values=q, scales=s32 * float("inf"), weight_dtype="s4"), "NaN or Inf"),
        (dict(values=q, scales=s32 * 1e8, weight_dtype="s4", act_dtype=torch.float16), "overflow"),
        (dict(values=q.to(torch.float8_e5m2), scales=s32, weight_dtype="e4m3"), "float8_e4m3fn values"),
        (dict(values=q[:, :120], scales=s32[:, :1], weight_dtype="s4"), "K of"),
    ]:
        with pytest.raises((ValueError, TypeError), match=fragment.replace("[", r"\[").replace("(", r"\(")):
            mixgemm.pack(**kw)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_no_scale_converts_only(fmt):
    """group_size=NO_SCALE keeps w's values as the format's (scales of 1.0, zero terms 0): dequantize
    gives w back exactly, pack(values, None) makes the same weight, and out-of-range w is refused."""
    torch.manual_seed(6)
    f = FORMATS[fmt]
    if isinstance(f, FloatWeightFormat):
        w = (torch.randn(48, 256) * 40).to(f.torch_dtype).float()  # values the format holds
        values = w.to(f.torch_dtype)
    else:
        w = torch.randint(f.qmin, f.qmax + 1, (48, 256)).float()
        values = w.to(torch.int32)
    pw = mixgemm.quantize(w, fmt, mixgemm.NO_SCALE, act_dtype=torch.bfloat16)
    assert pw.per_channel and torch.equal(pw.scales, torch.ones(1, 48, dtype=torch.bfloat16))
    assert torch.equal(mixgemm.dequantize(pw, torch.bfloat16).float(),
                       w.to(torch.bfloat16).float())
    packed = mixgemm.pack(values, None, weight_dtype=fmt, act_dtype=torch.bfloat16)
    assert torch.equal(packed.data, pw.data) and torch.equal(packed.scales, pw.scales)
    assert (packed.zeros is None) == (pw.zeros is None)
    if pw.zeros is not None:
        assert torch.equal(packed.zeros, pw.zeros) and not pw.zeros.any()
    back = mixgemm.PackedWeight.from_state_dict(pw.state_dict())
    assert torch.equal(mixgemm.dequantize(back), mixgemm.dequantize(pw))
    too_big = w * 1000 if isinstance(f, FloatWeightFormat) else w + (f.qmax - f.qmin + 1)
    with pytest.raises(ValueError, match="no scale"):
        mixgemm.quantize(too_big, fmt, mixgemm.NO_SCALE)
    if not isinstance(f, FloatWeightFormat):
        with pytest.raises(ValueError, match="integers in"):
            mixgemm.quantize(w + 0.5, fmt, mixgemm.NO_SCALE)
    with pytest.raises(ValueError, match="or 0 for no scale"):
        mixgemm.quantize(w, fmt, -2)


def test_quant_linear_converts_its_bias_once_per_activation_dtype():
    lin = torch.nn.Linear(128, 32, bias=True)
    layer = mixgemm.nn.QuantLinear.from_linear(lin, weight_dtype="s4", group_size=64, act_dtype=torch.bfloat16)
    assert layer.bias.dtype == torch.bfloat16 and layer.bias_for(torch.bfloat16) is layer.bias
    b16 = layer.bias_for(torch.float16)
    assert b16.dtype == torch.float16 and layer.bias_for(torch.float16) is b16
    assert torch.equal(b16, layer.bias.to(torch.float16))
    layer.to(torch.device("cpu"))  # a move forgets the converted copy
    assert layer.bias_for(torch.float16) is not b16


# ---- W4A8: s4 weights with e4m3 group scales x fp32 channel scales --------------------------------------
FP8 = torch.float8_e4m3fn


def test_w4a8_tables_and_unified_encoding():
    from mixgemm.quant import scale_tables, table_values, unified_decode, unified_encode
    q = torch.arange(-8, 8)
    codes = unified_encode(q)
    assert codes.tolist() == [8, 9, 10, 11, 12, 13, 14, 15, 0, 7, 6, 5, 4, 3, 2, 1]  # CUTLASS's unified_encode_int4b
    assert torch.equal(unified_decode(codes), q.to(torch.int16))
    g = torch.tensor([1.0, 3.0, 0.0078125, 32.0]).to(FP8)
    vals = table_values(g)
    for i, gi in enumerate(g.float().tolist()):  # q < 0: e4m3(g * q); q > 0: the negation of -q's entry
        want = [float(torch.tensor(gi * v).to(FP8).float()) if v < 0 else
                -float(torch.tensor(-gi * v).to(FP8).float()) for v in range(-8, 8)]
        assert vals[i].tolist() == want
    assert vals[1, 15].item() == 20.0  # 3 * 7 = 21 rounds to 20 in e4m3: the table, not the product
    t = scale_tables(g).view(FP8).float()
    assert torch.equal(t[:, :7], vals[:, :7]) and torch.equal(t[:, 7], -g.float())


def test_w4a8_quantize_picks_the_nearest_table_value():
    from mixgemm.quant import W4A8_GROUP_SCALE_MAX, table_values
    torch.manual_seed(0)
    w = torch.randn(64, 512)
    w[:16] *= 50
    pw = mixgemm.quantize(w, "s4", 128, act_dtype=FP8)
    assert pw.layout == "w4_mma32_unified" and pw.two_level and pw.scales.dtype == FP8
    assert pw.channel_scales.dtype == torch.float32 and pw.channel_scales.shape == (64,)
    assert (pw.scales.float().amax(dim=0) == W4A8_GROUP_SCALE_MAX).all()
    v = w / pw.channel_scales.unsqueeze(1)
    table = table_values(pw.scales.t()).repeat_interleave(128, dim=1)        # [N, K, 16]
    q = mixgemm.unpack(pw).long()
    got = (table.gather(2, (q + 8).unsqueeze(-1)).squeeze(-1) - v).abs()
    assert torch.equal(got, (table - v.unsqueeze(-1)).abs().amin(dim=-1))
    # dequantize is those table values times the channel scale, and as accurate as plain s4
    assert torch.equal(mixgemm.dequantize(pw), table.gather(2, (q + 8).unsqueeze(-1)).squeeze(-1)
                       * pw.channel_scales.unsqueeze(1))
    plain = mixgemm.dequantize(mixgemm.quantize(w, "s4", 128), torch.float32)
    err = lambda d: float((d - w).norm() / w.norm())  # noqa: E731
    assert err(mixgemm.dequantize(pw)) < 1.05 * err(plain)


def test_w4a8_state_dict_move_repr_and_refusals():
    pw = mixgemm.quantize(torch.randn(32, 256), "s4", 128, act_dtype=FP8)
    sd = pw.state_dict()
    assert "scale_tables" not in sd and sd["channel_scales"].dtype == torch.float32
    again = mixgemm.PackedWeight.from_state_dict(sd)
    assert torch.equal(again.scale_tables, pw.scale_tables) and torch.equal(mixgemm.dequantize(again), mixgemm.dequantize(pw))
    other = mixgemm.quantize(torch.zeros(32, 256), "s4", 128, act_dtype=FP8)
    other.load_state_dict(sd)
    assert torch.equal(other.scale_tables, pw.scale_tables)
    assert pw.to(torch.device("cpu")).scale_tables is not None
    assert "float32 per channel" in repr(pw)
    assert pw.nbytes() == 32 * 256 // 2 + 2 * 32 * 8 + 32 * 4  # nibbles, tables, channel scales
    data, scales, zeros, w_scales = pw.kernel_tensors(torch.float16)
    assert scales is pw.scale_tables and zeros is None and w_scales is pw.channel_scales
    with pytest.raises(ValueError, match="multiple of 128"):
        mixgemm.quantize(torch.randn(32, 256), "s4", 64, act_dtype=FP8)
    with pytest.raises(ValueError, match="do not convert"):
        pw.to_layout(W4_MMA16)
    with pytest.raises(ValueError, match="channel_scales"):
        mixgemm.PackedWeight.from_state_dict({**sd, "channel_scales": sd["channel_scales"].half()})
    with pytest.raises(ValueError, match="channel_scales"):
        mixgemm.PackedWeight.from_state_dict({**mixgemm.quantize(torch.randn(32, 256), "s4").state_dict(),
                                              "channel_scales": torch.ones(32)})
    with pytest.raises(ValueError, match="signed"):
        mixgemm.PackedWeight(pw.data, pw.scales, None, shape=(32, 256), weight_dtype="u4", group_size=128,
                             layout=pw.layout, channel_scales=pw.channel_scales)


def test_w4a8_pack_and_convert_only():
    q = torch.randint(-8, 8, (48, 256))
    s = torch.rand(48, 2) + 0.5
    pw = mixgemm.pack(q, s, weight_dtype="s4", act_dtype=FP8)
    assert pw.two_level and torch.equal(mixgemm.unpack(pw), q.to(torch.int16))
    intended = q.float() * s.repeat_interleave(128, dim=1)
    assert float((mixgemm.dequantize(pw) - intended).norm() / intended.norm()) < 0.05
    exact = mixgemm.quantize(q.float(), "s4", mixgemm.NO_SCALE, act_dtype=FP8)
    assert torch.equal(mixgemm.dequantize(exact), q.float())
