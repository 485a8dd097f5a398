"""The group-scaled Ampere family (sm80g) as data: names, constraints, shared memory, which layout
a GPU gets, and dispatch as on another GPU (dispatch_as)."""
from __future__ import annotations

import pytest
import torch

import mixgemm
from mixgemm import dispatch
from mixgemm.generator import KernelSpec, default_kernels
from mixgemm.generator.dtypes import DType
from mixgemm.generator.families.sm80 import SMEM_BYTES
from mixgemm.generator.families.sm80_group import Sm80GroupSpec


def test_name_grammar_round_trips():
    name = "mixgemm_sm80g_f16xu4_gz_f16_t128x64_w32x32_s4"
    spec = KernelSpec.parse(name)
    assert isinstance(spec, Sm80GroupSpec) and spec.name() == name
    assert spec.tile == (128, 64) and spec.warp == (32, 32) and spec.warps == (4, 2) and spec.zero
    assert spec.layout == "w4_mma16_shuffled" and spec.max_m() is None and spec.deterministic
    assert KernelSpec.parse("mixgemm_sm80g_bf16xe4m3_g_bf16_t128x128_w32x64_s3").layout == "w8_mma16_shuffled"


def test_shared_memory_matches_the_header_and_fits_sm86():
    """Bytes per stage: 4 k atoms of weights (128 or 256 bytes per atom and 16 rows), 64 k of x per
    token row, one scale (and zero) row per k atom; the epilogue's [tokens][features + 8] tile where
    larger. Every default kernel fits the 99 KB an sm86/89 CTA may take."""
    s4 = KernelSpec.parse("mixgemm_sm80g_bf16xs4_g_bf16_t128x128_w32x64_s4")
    assert s4.smem_bytes() == 4 * (4 * 8 * 128 + 128 * 128 + 4 * 128 * 2)
    u8 = KernelSpec.parse("mixgemm_sm80g_bf16xu8_gz_bf16_t128x128_w32x64_s3")
    assert u8.smem_bytes() == 3 * (4 * 8 * 256 + 128 * 128 + 2 * 4 * 128 * 2)
    two = Sm80GroupSpec(DType.BF16, DType.S4, s4.scale, False, DType.BF16, tile=(256, 128), warp=(64, 64), stages=2)
    assert two.smem_bytes() == 128 * (256 + 8) * 2  # the output tile is the larger
    assert all(s.smem_bytes() <= SMEM_BYTES for s in default_kernels() if s.token == "sm80g")


@pytest.mark.parametrize("tile, warp, stages, why", [
    ((128, 128), (32, 48), 4, "warp tile"),
    ((128, 128), (16, 16), 4, "warps per CTA"),
    ((256, 256), (64, 128), 2, "registers"),
    ((256, 128), (64, 64), 5, "shared memory"),
    ((128, 128), (32, 64), 6, "stages"),
])
def test_invalid_configurations_say_why(tile, warp, stages, why):
    spec = Sm80GroupSpec(DType.BF16, DType.S4, KernelSpec.parse("mixgemm_sm80g_bf16xs4_g_bf16_t128x128_w32x64_s4").scale,
                         False, DType.BF16, tile=tile, warp=warp, stages=stages)
    assert why in (spec.invalid_reason() or "")


def test_ampere_layouts():
    """On sm86 one mma16 layout serves group-scaled weights at every M (dec + sm80g); per-channel s8 keeps
    CUTLASS's epilogue-scaled family (w8_kmajor); the H100 keeps the sm90 layouts."""
    w = torch.randn(256, 1024)
    for wd in ("s4", "u4", "s8", "u8", "e4m3"):
        assert mixgemm.quantize(w, wd, 128, arch=86).layout.endswith("_mma16_shuffled")
    assert mixgemm.quantize(w, "u8", mixgemm.PER_CHANNEL, arch=86).layout == "w8_mma16_shuffled"
    assert mixgemm.quantize(w, "s8", mixgemm.PER_CHANNEL, arch=86).layout == "w8_kmajor"
    assert mixgemm.quantize(w, "s8", mixgemm.PER_CHANNEL, arch=90).layout == "w8_mma16_shuffled"


def test_dispatch_as_overrides_and_restores_the_capability():
    native = dispatch.capability(0)
    with dispatch.dispatch_as(86):
        assert dispatch.capability(0) == 86
        with dispatch.dispatch_as(80):
            assert dispatch.capability(0) == 80
        assert dispatch.capability(0) == 86
    assert dispatch.capability(0) == native
    with pytest.raises(ValueError, match="arch"):
        with dispatch.dispatch_as(8.6):
            pass
