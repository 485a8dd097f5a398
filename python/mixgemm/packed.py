"""PackedWeight: a quantized Linear weight in the layout of one arch's kernels.

It is an ``nn.Module`` holding buffers (``data``, ``scales``, ``zeros``) and its metadata as extra
state, so ``.to(device)``, ``state_dict()`` and ``load_state_dict()`` work as for any module. It
records its layout and arch and refuses to be read by kernels of another layout.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch

from .quant import ACT_DTYPES, FORMATS, LAYOUTS, Layout

DEFAULT_WEIGHT_DTYPE = "s4"
DEFAULT_GROUP_SIZE = 128
DEFAULT_ARCH = 90


class Plan(NamedTuple):
    data: torch.Tensor
    scales: torch.Tensor
    zeros: Optional[torch.Tensor]
    shape: tuple[int, int]
    padded_shape: tuple[int, int]
    group_size: int
    arch: int
    weight_dtype: str
    act_dtype: torch.dtype
    device: torch.device


class PackedWeight(torch.nn.Module):
    data: torch.Tensor
    scales: torch.Tensor
    zeros: Optional[torch.Tensor]

    def __init__(self, data: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor], *,
                 shape: tuple[int, int], weight_dtype: str, group_size: int, layout: str, arch: int,
                 padded_shape: Optional[tuple[int, int]] = None):
        super().__init__()
        self.register_buffer("data", data)
        self.register_buffer("scales", scales)
        self.register_buffer("zeros", zeros)
        self.shape = (int(shape[0]), int(shape[1]))
        self.padded_shape = tuple(int(v) for v in (padded_shape or shape))
        self.weight_dtype = weight_dtype
        self.group_size = int(group_size)
        self.layout = layout
        self.arch = int(arch)
        self.validate()

    def validate(self) -> None:
        """Structural checks: every buffer has the shape, dtype and device the layout implies."""
        n, k = self.shape
        pn, pk = self.padded_shape
        if self.weight_dtype not in FORMATS:
            raise ValueError(f"PackedWeight.weight_dtype={self.weight_dtype!r} is not one of {sorted(FORMATS)}")
        if self.arch not in LAYOUTS or LAYOUTS[self.arch].tag != self.layout:
            raise ValueError(f"PackedWeight layout {self.layout!r} for sm{self.arch} is unknown to this mixgemm")
        if not (0 < n <= pn and 0 < k <= pk):
            raise ValueError(f"PackedWeight shape {self.shape} must fit in its padded shape {self.padded_shape}")
        if self.group_size <= 0 or pk % self.group_size:
            raise ValueError(f"PackedWeight group_size={self.group_size} must divide the padded K={pk}")
        if self.data.dtype != torch.uint8 or self.data.numel() * 2 != pn * pk:
            raise ValueError(f"PackedWeight.data must be uint8 with {pn * pk // 2} elements for {self.padded_shape}, "
                             f"got {self.data.dtype} with {self.data.numel()}")
        groups = (pk // self.group_size, pn)
        if self.scales.dtype not in ACT_DTYPES or tuple(self.scales.shape) != groups:
            raise ValueError(f"PackedWeight.scales must be float16/bfloat16 of shape {groups} ([K/group, N]), "
                             f"got {self.scales.dtype} {tuple(self.scales.shape)}")
        if FORMATS[self.weight_dtype].zero_point != (self.zeros is not None):
            raise ValueError(f"PackedWeight.zeros must be {'given' if FORMATS[self.weight_dtype].zero_point else 'None'} "
                             f"for weight_dtype={self.weight_dtype!r}")
        for name, t in (("scales", self.scales), ("zeros", self.zeros)):
            if t is not None and not t.is_contiguous():
                raise ValueError(f"PackedWeight.{name} must be contiguous")
        if self.zeros is not None and (self.zeros.dtype != self.scales.dtype or self.zeros.shape != self.scales.shape
                                       or self.zeros.device != self.scales.device):
            raise ValueError(f"PackedWeight.zeros must match scales ({self.scales.dtype} {tuple(self.scales.shape)}), "
                             f"got {self.zeros.dtype} {tuple(self.zeros.shape)} on {self.zeros.device}")
        if self.data.device != self.scales.device:
            raise ValueError(f"PackedWeight.data is on {self.data.device} but scales on {self.scales.device}")

    # ---- launch plan ---------------------------------------------------------------------------
    def plan(self) -> "Plan":
        """What gemm() needs per call, gathered once (buffer lookups on a Module cost ~0.3 us each)."""
        plan = self.__dict__.get("_plan")
        if plan is None:
            plan = Plan(self.data, self.scales, self.zeros, self.shape, self.padded_shape, self.group_size,
                        self.arch, self.weight_dtype, self.scales.dtype, self.data.device)
            self.__dict__["_plan"] = plan
        return plan

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop("_plan", None)  # .to()/.cuda() replace the buffers
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs):
        self.__dict__.pop("_plan", None)
        return super()._load_from_state_dict(*args, **kwargs)

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
        return {"shape": list(self.shape), "padded_shape": list(self.padded_shape), "weight_dtype": self.weight_dtype,
                "group_size": self.group_size, "layout": self.layout, "arch": self.arch, "version": 1}

    def set_extra_state(self, state: dict) -> None:
        if state.get("version") != 1:
            raise ValueError(f"PackedWeight state version {state.get('version')!r} is not supported (expected 1)")
        self.shape = tuple(state["shape"])
        self.padded_shape = tuple(state.get("padded_shape", state["shape"]))
        self.weight_dtype = state["weight_dtype"]
        self.group_size = state["group_size"]
        self.layout = state["layout"]
        self.arch = state["arch"]
        self.validate()

    @classmethod
    def from_state_dict(cls, state: dict, prefix: str = "") -> "PackedWeight":
        meta = state[prefix + "_extra_state"]
        pw = cls(state[prefix + "data"], state[prefix + "scales"], state.get(prefix + "zeros"),
                 shape=meta["shape"], weight_dtype=meta["weight_dtype"], group_size=meta["group_size"],
                 layout=meta["layout"], arch=meta["arch"], padded_shape=meta.get("padded_shape"))
        return pw

    def extra_repr(self) -> str:
        n, k = self.shape
        pad = f", padded_shape={self.padded_shape}" if self.padded_shape != self.shape else ""
        return (f"shape=({n}, {k}){pad}, weight={self.weight_dtype}, group_size={self.group_size}, "
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
             act_dtype: Optional[torch.dtype] = None, pad: bool = False) -> PackedWeight:
    """Quantize a Linear weight ``w`` [N, K] (out x in) round-to-nearest and pack it for ``arch``.

    weight_dtype: 's4' (symmetric) or 'u4' (asymmetric, with zero points).
    group_size: k per scale; -1 or K for per-channel scales.
    zero_point: defaults to the format's (False for s4, True for u4); other values are refused.
    arch: layout to pack for (default: the arch of w's GPU if supported, else 90).
    act_dtype: activation dtype of the GEMMs that will use it (default: w's dtype if 16-bit, else bf16).
    pad: zero-pad N and K up to what the layout and group size need, so any shape runs; gemm() pads
        x along K (a copy) and returns a view of the first N columns. The last group may then be
        partial (it holds zeros past K).
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
    per_channel = group_size in (-1, None)
    if not per_channel and (not isinstance(group_size, int) or group_size <= 0):
        raise ValueError(f"group_size={group_size!r} must be a positive integer (or -1 for per-channel)")
    layout = _layout_for(arch if arch is not None else _default_arch(w))
    pn, pk = n, k
    if pad:
        pn = -(-n // layout.n_multiple) * layout.n_multiple
        step = layout.k_multiple if per_channel else math.lcm(layout.k_multiple, group_size)
        pk = -(-k // step) * step
        w = torch.nn.functional.pad(w, (0, pk - k, 0, pn - n))
    if per_channel:
        group_size = pk
    if pk % group_size:
        raise ValueError(f"group_size={group_size} must divide K={k} (or pass pad=True to zero-pad K to a multiple "
                         f"of it, or -1 for per-channel)")
    if pn % layout.n_multiple or pk % layout.k_multiple:
        raise ValueError(f"w shape (N={n}, K={k}) does not fit the sm{layout.arch} layout: N must be a multiple "
                         f"of {layout.n_multiple} and K of {layout.k_multiple}; pass pad=True to zero-pad")
    if group_size != pk and group_size % layout.k_multiple:
        raise ValueError(f"group_size={group_size} must be a multiple of {layout.k_multiple} on sm{layout.arch} "
                         f"(or -1 for per-channel)")
    q, scales, zeros = fmt.quantize(w, group_size, act_dtype)
    return PackedWeight(layout.pack(q), scales, zeros, shape=(n, k), weight_dtype=weight_dtype,
                        group_size=group_size, layout=layout.tag, arch=layout.arch, padded_shape=(pn, pk))


def unpack(pw: PackedWeight) -> torch.Tensor:
    """The integer values q [N, K] (int8) stored in pw (padding included, see pw.padded_shape)."""
    pn, pk = pw.padded_shape
    return LAYOUTS[pw.arch].unpack(pw.data, pn, pk, FORMATS[pw.weight_dtype].weight.signed)


def dequantize(pw: PackedWeight) -> torch.Tensor:
    """The exact [N, K] weights the kernels use, in the activation dtype.

    NOTE(rounding): the sm90 mainloop computes q * scale + zero as one fused multiply-add, rounded
    once to the activation dtype. Rounding q * scale first would be a different weight: the two
    terms nearly cancel for u4, and a GEMM over such weights differs by ~5e-3 (measured on the H100).
    """
    n, k = pw.shape
    act = pw.act_dtype
    expand = lambda t: t.float().t().repeat_interleave(pw.group_size, dim=1)  # [G, N] -> [N, K]  # noqa: E731
    w = unpack(pw).float() * expand(pw.scales)  # exact in fp32: 4-bit x 16-bit products
    if pw.zeros is not None:
        w = w + expand(pw.zeros)  # exact in fp32 for the magnitudes a zero point spans
    return w.to(act)[:n, :k]
