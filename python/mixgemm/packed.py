"""PackedWeight: a quantized Linear weight in the layout of one arch's kernels.

It is an ``nn.Module`` holding buffers (``data``, ``scales``, ``zeros``) and its metadata as extra
state, so ``.to(device)``, ``state_dict()`` and ``load_state_dict()`` work as for any module. It
records its layout and arch and refuses to be read by kernels of another layout.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from .generator.spec import DType
from .quant import ACT_DTYPES, FORMATS, LAYOUTS, Layout

DEFAULT_WEIGHT_DTYPE = "s4"
DEFAULT_GROUP_SIZE = 128
DEFAULT_ARCH = 90


class PackedWeight(torch.nn.Module):
    data: torch.Tensor
    scales: torch.Tensor
    zeros: Optional[torch.Tensor]

    def __init__(self, data: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor], *,
                 shape: tuple[int, int], weight_dtype: str, group_size: int, layout: str, arch: int):
        super().__init__()
        self.register_buffer("data", data)
        self.register_buffer("scales", scales)
        self.register_buffer("zeros", zeros)
        self.shape = (int(shape[0]), int(shape[1]))
        self.weight_dtype = weight_dtype
        self.group_size = int(group_size)
        self.layout = layout
        self.arch = int(arch)

    # ---- metadata --------------------------------------------------------------------------------
    @property
    def act_dtype(self) -> torch.dtype:
        """Activation dtype the scales (and so the kernels) are made for."""
        return self.scales.dtype

    @property
    def zero_point(self) -> bool:
        return self.zeros is not None

    @property
    def scale_mode(self) -> str:
        return "channel" if self.group_size == self.shape[1] else "group"

    @property
    def device(self) -> torch.device:
        return self.data.device

    def nbytes(self) -> int:
        """Bytes a kernel reads for the weight: packed values + scales (+ zeros)."""
        return sum(t.numel() * t.element_size() for t in (self.data, self.scales, self.zeros) if t is not None)

    def get_extra_state(self) -> dict:
        return {"shape": list(self.shape), "weight_dtype": self.weight_dtype, "group_size": self.group_size,
                "layout": self.layout, "arch": self.arch, "version": 1}

    def set_extra_state(self, state: dict) -> None:
        if state.get("version") != 1:
            raise ValueError(f"PackedWeight state version {state.get('version')!r} is not supported (expected 1)")
        self.shape = tuple(state["shape"])
        self.weight_dtype = state["weight_dtype"]
        self.group_size = state["group_size"]
        self.layout = state["layout"]
        self.arch = state["arch"]

    @classmethod
    def from_state_dict(cls, state: dict, prefix: str = "") -> "PackedWeight":
        meta = state[prefix + "_extra_state"]
        pw = cls(state[prefix + "data"], state[prefix + "scales"], state.get(prefix + "zeros"),
                 shape=meta["shape"], weight_dtype=meta["weight_dtype"], group_size=meta["group_size"],
                 layout=meta["layout"], arch=meta["arch"])
        return pw

    def extra_repr(self) -> str:
        n, k = self.shape
        return (f"shape=({n}, {k}), weight={self.weight_dtype}, group_size={self.group_size}, "
                f"zero_point={self.zero_point}, act={str(self.act_dtype).removeprefix('torch.')}, "
                f"layout={self.layout}, arch=sm{self.arch}")


def _layout_for(arch: int) -> Layout:
    if arch not in LAYOUTS:
        raise ValueError(f"arch={arch!r}: no packed layout for this arch; supported: {sorted(LAYOUTS)} "
                         f"(sm90 = Hopper)")
    return LAYOUTS[arch]


def _default_arch(w: torch.Tensor) -> int:
    if w.is_cuda:
        major, minor = torch.cuda.get_device_capability(w.device)
        cap = 10 * major + minor
        if cap in LAYOUTS:
            return cap
    return DEFAULT_ARCH


def quantize(w: torch.Tensor, weight_dtype: str = DEFAULT_WEIGHT_DTYPE, group_size: int = DEFAULT_GROUP_SIZE,
             zero_point: Optional[bool] = None, arch: Optional[int] = None,
             act_dtype: Optional[torch.dtype] = None) -> PackedWeight:
    """Quantize a Linear weight ``w`` [N, K] (out x in) round-to-nearest and pack it for ``arch``.

    weight_dtype: 's4' (symmetric) or 'u4' (asymmetric, with zero points).
    group_size: k per scale; -1 or K for per-channel scales.
    zero_point: defaults to the format's (False for s4, True for u4); other values are refused.
    arch: layout to pack for (default: the arch of w's GPU if supported, else 90).
    act_dtype: activation dtype of the GEMMs that will use it (default: w's dtype if 16-bit, else bf16).
    """
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w must be a torch.Tensor [N, K], got {type(w).__name__}")
    if w.dim() != 2:
        raise ValueError(f"w must be 2-D [N, K] (out features x in features), got shape {tuple(w.shape)}")
    if w.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"w.dtype={w.dtype} is not supported; use float16, bfloat16 or float32")
    if weight_dtype not in FORMATS:
        raise ValueError(f"weight_dtype={weight_dtype!r} is not supported; choose one of {sorted(FORMATS)}")
    fmt = FORMATS[weight_dtype]
    if zero_point is None:
        zero_point = fmt.zero_point
    if zero_point != fmt.zero_point:
        hint = "use weight_dtype='u4' for zero points" if zero_point else "u4 always has zero points"
        raise ValueError(f"zero_point={zero_point} is not available for weight_dtype={weight_dtype!r}: {hint}")
    if act_dtype is None:
        act_dtype = w.dtype if w.dtype in ACT_DTYPES else torch.bfloat16
    if act_dtype not in ACT_DTYPES:
        raise TypeError(f"act_dtype={act_dtype} is not supported; use torch.bfloat16 or torch.float16")
    if torch.isnan(w).any() or torch.isinf(w).any():
        raise ValueError("w contains NaN or Inf; quantization needs finite weights")
    n, k = w.shape
    if group_size in (-1, None):
        group_size = k
    if not isinstance(group_size, int) or group_size <= 0 or k % group_size:
        raise ValueError(f"group_size={group_size!r} must be a positive divisor of K={k} (or -1 for per-channel)")
    layout = _layout_for(arch if arch is not None else _default_arch(w))
    if n % layout.n_multiple or k % layout.k_multiple:
        raise ValueError(f"w shape (N={n}, K={k}) does not fit the sm{layout.arch} layout: N must be a multiple "
                         f"of {layout.n_multiple} and K of {layout.k_multiple} (pad the weight with zeros)")
    if group_size != k and group_size % layout.k_multiple:
        raise ValueError(f"group_size={group_size} must be a multiple of {layout.k_multiple} on sm{layout.arch} "
                         f"(or -1 for per-channel)")
    q, scales, zeros = fmt.quantize(w, group_size, act_dtype)
    return PackedWeight(layout.pack(q), scales, zeros, shape=(n, k), weight_dtype=weight_dtype,
                        group_size=group_size, layout=layout.tag, arch=layout.arch)


def unpack(pw: PackedWeight) -> torch.Tensor:
    """The integer values q [N, K] (int8) stored in pw."""
    n, k = pw.shape
    return LAYOUTS[pw.arch].unpack(pw.data, n, k, FORMATS[pw.weight_dtype].weight.signed)


def dequantize(pw: PackedWeight) -> torch.Tensor:
    """The exact [N, K] weights the kernels multiply by, in the activation dtype."""
    n, k = pw.shape
    act = pw.act_dtype
    q = unpack(pw).to(act)
    expand = lambda t: t.t().repeat_interleave(pw.group_size, dim=1)  # [G, N] -> [N, K]  # noqa: E731
    w = q * expand(pw.scales)
    if pw.zeros is not None:
        w = w + expand(pw.zeros)
    return w
