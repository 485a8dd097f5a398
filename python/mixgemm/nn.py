"""QuantLinear: a drop-in nn.Linear replacement backed by mixgemm.gemm."""
from __future__ import annotations

from typing import Optional

import torch

from .ops import gemm
from .packed import PackedWeight, quantize


class QuantLinear(torch.nn.Module):
    def __init__(self, weight: PackedWeight, bias: Optional[torch.Tensor] = None):
        super().__init__()
        self.weight = weight
        self.register_buffer("bias", bias)
        self.out_features, self.in_features = weight.shape

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, **quantize_kwargs) -> "QuantLinear":
        """Quantize a Linear's weight (see mixgemm.quantize for the keyword arguments)."""
        pw = quantize(linear.weight.detach(), **quantize_kwargs)
        bias = linear.bias.detach().to(pw.scale_dtype) if linear.bias is not None else None
        return cls(pw, bias)

    def bias_for(self, dtype: torch.dtype) -> Optional[torch.Tensor]:
        """The bias in activation dtype `dtype`: the stored one, or a copy converted once (the layer
        serves bf16 and fp16 activations, as its PackedWeight does)."""
        if self.bias is None or self.bias.dtype == dtype:
            return self.bias
        cache = self.__dict__.setdefault("_bias_cast", {})
        hit = cache.get(dtype)
        if hit is None or hit.device != self.bias.device:
            hit = cache[dtype] = self.bias.to(dtype)
        return hit

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop("_bias_cast", None)  # moved or cast: convert again on next use
        return super()._apply(fn, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gemm(x, self.weight, self.bias_for(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
