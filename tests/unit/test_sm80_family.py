"""The Ampere CUTLASS 2.x family (sm80) as data: layout choice per GPU, which activations a
(layout, format) pair takes, the epilogue-scaled reference, and the name grammar."""
from __future__ import annotations

import pytest
import torch

import mixgemm
from mixgemm.generator import KernelSpec
from mixgemm.generator.families.sm80 import Sm80Spec
from mixgemm.packed import act8_dtype, choose_layout
from mixgemm.testing import reference


def test_layout_choice_per_gpu():
    """An sm80-class GPU gets the plain layout for per-channel s8 (this family serves every M there);
    group scales and 4-bit weights stay with the decode family's layout; the H100 keeps the sm90 one."""
    w = torch.randn(256, 1024)
    assert mixgemm.quantize(w, "s8", mixgemm.PER_CHANNEL, arch=80).layout == "w8_kmajor"
    assert mixgemm.quantize(w, "s8", mixgemm.PER_CHANNEL, arch=86).layout == "w8_kmajor"
    assert mixgemm.quantize(w, "s8", 128, arch=80).layout == "w8_mma16_shuffled"
    assert mixgemm.quantize(w, "s8", mixgemm.PER_CHANNEL, arch=90).layout == "w8_mma16_shuffled"
    assert mixgemm.quantize(w, "s4", 128, arch=80).layout == "w4_mma16_shuffled"
    assert choose_layout("s8", None) == "w8_mma16_shuffled"
    assert choose_layout("e4m3", 90, torch.float8_e4m3fn) == "w8_kmajor"


def test_activation_kind_is_a_fact_of_layout_and_format():
    assert act8_dtype("w8_kmajor", "e4m3") == act8_dtype("w4_mma32_unified", "s4") == torch.float8_e4m3fn
    assert act8_dtype("w4_kmajor", "s4") == torch.int8
    assert act8_dtype("w8_kmajor", "s8") is None and act8_dtype("w8_mma16_shuffled", "s8") is None


def test_integer_w4a8_weights():
    """s4 weights for s8 activations: the plain nibble layout, per-channel scales only, exact round trip."""
    w = torch.randn(64, 256)
    pw = mixgemm.quantize(w, "s4", mixgemm.PER_CHANNEL, act_dtype=torch.int8, arch=86)
    assert pw.layout == "w4_kmajor" and pw.per_channel and pw.scales.dtype == torch.bfloat16
    q = mixgemm.unpack(pw)
    assert q.min() >= -8 and q.max() <= 7
    assert torch.equal(pw.data[:1], (q[0, 0] & 0xF | (q[0, 1] & 0xF) << 4).to(torch.uint8).reshape(1))
    assert torch.equal(mixgemm.dequantize(pw, torch.float32), q.float() * pw.scales.float().t())
    with pytest.raises(ValueError, match="per-channel"):
        mixgemm.quantize(w, "s4", 128, act_dtype=torch.int8)
    with pytest.raises(ValueError, match="K"):
        mixgemm.quantize(torch.randn(64, 48), "s4", mixgemm.PER_CHANNEL, act_dtype=torch.int8)


def test_grouped_weights_do_not_move_to_the_per_channel_layout():
    pw = mixgemm.quantize(torch.randn(256, 1024), "s8", 128, arch=90)
    with pytest.raises(ValueError, match="per-channel"):
        pw.to_layout("w8_kmajor")
    per_channel = mixgemm.quantize(torch.randn(256, 1024), "s8", mixgemm.PER_CHANNEL, arch=90)
    plain = per_channel.to_layout("w8_kmajor")
    assert torch.equal(mixgemm.dequantize(plain), mixgemm.dequantize(per_channel))


def test_reference_scales_in_fp32_for_epilogue_scaled_weights():
    """The sm80 kernels apply the per-channel scale to the fp32 sum, so the reference multiplies by
    q * scale unrounded (dequantize(pw, float32)), not by its bf16 rounding."""
    pw = mixgemm.quantize(torch.randn(64, 256), "s8", mixgemm.PER_CHANNEL, arch=80)
    x = torch.randn(3, 256, dtype=torch.bfloat16)
    want = x.double() @ mixgemm.dequantize(pw, torch.float32).double().t()
    assert torch.equal(reference(x, pw), want)


def test_names_round_trip_and_tiles_read_features_by_tokens():
    s = KernelSpec.parse("mixgemm_sm80_bf16xs8_c_bf16_t128x16x64_w32x16_s6_sk")
    assert isinstance(s, Sm80Spec) and s.tile == (128, 16, 64) and s.warp == (32, 16) and s.stages == 6
    assert s.stream_k and s.splits_k and not s.deterministic and s.warps == 4
    assert s.capabilities() == (80, 86, 87, 89, 90)
    bad = Sm80Spec(s.act, s.weight, s.scale, s.zero, s.out, tile=(256, 128, 64), warp=(64, 64), stages=4)
    assert "shared memory" in bad.invalid_reason()
    u8 = Sm80Spec(s.act, mixgemm.generator.DType.U8, s.scale, True, s.out, tile=(128, 64, 64), warp=(64, 32), stages=4)
    assert "s8" in u8.invalid_reason()
