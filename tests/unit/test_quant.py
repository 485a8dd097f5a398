"""Quantize / pack / dequantize on CPU tensors against plain reference math."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

import mixgemm
from mixgemm.quant import FORMATS, LAYOUTS, pack_nibbles, sm90_permute, sm90_unpermute, unpack_nibbles


def reference_quantize(w, fmt, group_size, act):
    """Loop-free but independent statement of round-to-nearest group quantization."""
    n, k = w.shape
    out_q = torch.empty(n, k, dtype=torch.int64)
    scales = torch.empty(k // group_size, n, dtype=act)
    zeros = torch.empty(k // group_size, n, dtype=act) if fmt.zero_point else None
    for g in range(k // group_size):
        blk = w[:, g * group_size:(g + 1) * group_size].double()
        if fmt.zero_point:
            lo, hi = blk.min(1).values.clamp(max=0), blk.max(1).values.clamp(min=0)
            s = torch.where(hi > lo, (hi - lo) / 15, torch.ones_like(hi)).to(act)
            z = torch.clamp(torch.round(-lo / s.double()), 0, 15)
            q = torch.clamp(torch.round(blk / s.double()[:, None]) + z[:, None], 0, 15)
            zeros[g] = (-z * s.double()).to(act)
        else:
            amax = blk.abs().max(1).values
            s = torch.where(amax > 0, amax / 7, torch.ones_like(amax)).to(act)
            q = torch.clamp(torch.round(blk / s.double()[:, None]), -8, 7)
        scales[g] = s
        out_q[:, g * group_size:(g + 1) * group_size] = q.long()
    return out_q, scales, zeros


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("act", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("group_size", [64, 128, -1])
def test_quantize_matches_reference(fmt, act, group_size):
    torch.manual_seed(0)
    w = torch.randn(48, 256) * 0.05
    pw = mixgemm.quantize(w, fmt, group_size, act_dtype=act)
    g = 256 if group_size == -1 else group_size
    q, s, z = reference_quantize(w, FORMATS[fmt], g, act)
    assert pw.group_size == g and pw.scale_mode == ("channel" if group_size == -1 else "group")
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


def test_sm90_permutation_is_a_bijection_and_inverts():
    n, k = 48, 128
    idx = torch.arange(n * k).reshape(n, k)
    flat = sm90_permute(idx)
    assert torch.equal(flat.sort().values, torch.arange(n * k))
    assert torch.equal(sm90_unpermute(flat, n, k), idx)


def test_sm90_atom_formula():
    # value (n, k) of a 16x16 atom sits at 32*(n%8) + (n//8) + 4*(k%8) + 2*(k//8); atoms column-major
    n, k = 32, 64
    idx = torch.arange(n * k).reshape(n, k)
    offsets = torch.empty(n * k, dtype=torch.long)
    offsets[sm90_permute(idx)] = torch.arange(n * k)  # offsets[value] = position
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
    assert moved.device.type == "cpu" and "layout=sm90" in repr(pw)


@pytest.mark.parametrize("kwargs, exc, fragment", [
    (dict(w=torch.randn(32, 128, dtype=torch.float64)), TypeError, "w.dtype"),
    (dict(w=torch.randn(2, 32, 128)), ValueError, "2-D"),
    (dict(weight_dtype="s3"), ValueError, "weight_dtype"),
    (dict(group_size=100), ValueError, "group_size=100"),
    (dict(group_size=32), ValueError, "multiple of 64"),
    (dict(w=torch.randn(40, 128)), ValueError, "multiple of 16"),
    (dict(w=torch.randn(32, 96), group_size=-1), ValueError, "K of 64"),
    (dict(zero_point=True), ValueError, "zero_point=True"),
    (dict(weight_dtype="u4", zero_point=False), ValueError, "zero_point=False"),
    (dict(arch=80), ValueError, "arch=80"),
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
    assert pw.data.numel() == n * k // 2
    assert pw.scales.shape == (k // pw.group_size, n)
    wq = mixgemm.dequantize(pw)
    assert wq.shape == (n, k) and torch.isfinite(wq).all()
    assert torch.equal(mixgemm.unpack(mixgemm.PackedWeight.from_state_dict(pw.state_dict())), mixgemm.unpack(pw))


def test_layout_registry_is_keyed_by_arch():
    assert LAYOUTS[90].arch == 90 and LAYOUTS[90].tag == "sm90_w4_mma16_shuffled"


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
])
def test_corrupt_packed_weights_are_refused(mutate, fragment):
    sd = mixgemm.quantize(torch.randn(32, 256, dtype=torch.bfloat16), "u4", 128).state_dict()
    sd["_extra_state"] = dict(sd["_extra_state"])
    mutate(sd)
    with pytest.raises(ValueError, match=fragment):
        mixgemm.PackedWeight.from_state_dict(sd)
