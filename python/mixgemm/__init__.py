"""mixgemm: mixed-input GEMM (int4, int8, fp8 weights x fp16/bf16 activations) from generated kernel families.

    pw = mixgemm.quantize(w, weight_dtype="s4", group_size=128)   # w: [N, K] Linear weight
    y = mixgemm.gemm(x, pw)                                        # y = x @ dequantize(pw).T

fp8 x fp8 (Hopper): e4m3 weights with per-channel scales, activations quantized per token:

    pw = mixgemm.quantize(w, "e4m3", group_size=-1, act_dtype=torch.float8_e4m3fn)
    xq, x_scale = mixgemm.quantize_activations(x)
    y = mixgemm.gemm(xq, pw, x_scale=x_scale)                      # bf16 (out_dtype=torch.float16 too)
"""
from .generator.dtypes import NO_SCALE, PER_CHANNEL
from .packed import PackedWeight, dequantize, pack, quantize, unpack
from .ops import explain, gemm, kernels, quantize_activations
from .quant import FORMATS, LAYOUTS
from . import generator, nn, testing  # noqa: F401

__version__ = "0.1.0"
__all__ = ["PackedWeight", "quantize", "pack", "dequantize", "unpack", "gemm", "quantize_activations", "kernels",
           "explain", "FORMATS", "LAYOUTS",
           "PER_CHANNEL", "NO_SCALE"]
