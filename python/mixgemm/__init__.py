"""mixgemm: mixed-input GEMM (int4, int8, fp8 weights x fp16/bf16 activations) from generated kernel families.

    pw = mixgemm.quantize(w, weight_dtype="s4", group_size=128)   # w: [N, K] Linear weight
    y = mixgemm.gemm(x, pw)                                        # y = x @ dequantize(pw).T
"""
from .generator.dtypes import NO_SCALE, PER_CHANNEL
from .packed import PackedWeight, dequantize, pack, quantize, unpack
from .ops import explain, gemm, kernels
from .quant import FORMATS, LAYOUTS
from . import generator, nn, testing  # noqa: F401

__version__ = "0.1.0"
__all__ = ["PackedWeight", "quantize", "pack", "dequantize", "unpack", "gemm", "kernels", "explain", "FORMATS", "LAYOUTS",
           "PER_CHANNEL", "NO_SCALE"]
