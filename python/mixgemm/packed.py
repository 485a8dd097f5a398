"""PackedWeight: a quantized Linear weight in one packed layout.

It is an ``nn.Module`` holding buffers (``data``, ``scales``, ``zeros``; ``channel_scales`` for
W4A8) and its metadata as extra state, so ``.to(device)``, ``state_dict()`` and ``load_state_dict()`` work as for any module. It
records its layout tag (not a GPU): every kernel family that reads that layout can use it, on any
GPU that family runs on, and a kernel of another layout refuses it. One PackedWeight serves bf16
and fp16 activations: scales are stored in one of them and converted once, on first use, to the
other (refused if the conversion would change a value). W4A8 weights (layout w4_mma32_unified)
keep e4m3 group scales and fp32 per-channel scales instead, and the kernels' lookup tables of the
group scales as a buffer derived from them (not saved in the state dict).
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional

import torch

from .generator.catalog import catalog
from .generator.dtypes import DEFAULT_GROUP_SIZE, DEFAULT_WEIGHT_DTYPE, NO_SCALE, PER_CHANNEL
from .generator.family import ShapeRule
from .generator.layouts import ACT8_FORMATS, LEGACY_TAGS
from .generator.dtypes import DType
from .quant import (ACT8_DTYPES, ACT_DTYPES, FORMATS, LAYOUTS, TWO_LEVEL_LAYOUTS, FloatWeightFormat, Layout,
                    dequantize_w4a8, quantize_w4a8, scale_tables, torch_dtype, two_level_scales)

STATE_VERSION = 2


class Plan(NamedTuple):
    """What gemm() needs per call, gathered once per PackedWeight. scales: what the kernels read (the
    lookup tables for W4A8); w_scales: the per-channel scales of W4A8 weights, else None."""
    data: torch.Tensor
    scales: torch.Tensor
    zeros: Optional[torch.Tensor]
    w_scales: Optional[torch.Tensor]
    shape: tuple[int, int]
    padded_shape: tuple[int, int]
    group_size: int
    layout: str
    weight_dtype: str
    scale_dtype: torch.dtype
    device: torch.device


class PackedWeight(torch.nn.Module):
    data: torch.Tensor
    scales: torch.Tensor
    zeros: Optional[torch.Tensor]
    channel_scales: Optional[torch.Tensor]

    def __init__(self, data: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor], *,
                 shape: tuple[int, int], weight_dtype: str, group_size: int, layout: str,
                 padded_shape: Optional[tuple[int, int]] = None, channel_scales: Optional[torch.Tensor] = None):
        super().__init__()
        self.register_buffer("data", data)
        self.register_buffer("scales", scales)
        self.register_buffer("zeros", zeros)
        self.register_buffer("channel_scales", channel_scales)
        self.register_buffer("scale_tables", None, persistent=False)
        self.shape = (int(shape[0]), int(shape[1]))
        self.padded_shape = tuple(int(v) for v in (padded_shape or shape))
        self.weight_dtype = weight_dtype
        self.group_size = int(group_size)
        self.layout = layout
        self.validate()

    def validate(self) -> None:
        """Structural checks: every buffer has the shape, dtype and device the layout implies."""
        n, k = self.shape
        pn, pk = self.padded_shape
        if self.weight_dtype not in FORMATS:
            raise ValueError(f"PackedWeight.weight_dtype={self.weight_dtype!r} is not one of {sorted(FORMATS)}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"PackedWeight layout {self.layout!r} is unknown to this mixgemm (known: {sorted(LAYOUTS)})")
        layout = LAYOUTS[self.layout]
        if layout.bits != FORMATS[self.weight_dtype].bits or (layout.signed_only and not FORMATS[self.weight_dtype].dtype.signed):
            raise ValueError(f"PackedWeight layout {self.layout!r} holds {'signed ' if layout.signed_only else ''}"
                             f"{layout.bits}-bit values, not {self.weight_dtype}")
        if not (0 < n <= pn and 0 < k <= pk):
            raise ValueError(f"PackedWeight shape {self.shape} must fit in its padded shape {self.padded_shape}")
        if pn % layout.n_multiple or pk % layout.k_multiple:
            raise ValueError(f"PackedWeight padded shape {self.padded_shape} is not a whole number of "
                             f"{layout.n_multiple}x{layout.k_multiple} atoms of layout {self.layout!r}")
        if self.group_size <= 0 or pk % self.group_size:
            raise ValueError(f"PackedWeight group_size={self.group_size} must divide the padded K={pk}")
        if self.data.dtype != torch.uint8 or self.data.numel() != layout.nbytes(pn, pk):
            raise ValueError(f"PackedWeight.data must be uint8 with {layout.nbytes(pn, pk)} elements for "
                             f"{self.padded_shape}, got {self.data.dtype} with {self.data.numel()}")
        groups = (pk // self.group_size, pn)
        if self.two_level:
            if self.scales.dtype != torch.float8_e4m3fn or tuple(self.scales.shape) != groups:
                raise ValueError(f"PackedWeight.scales of layout {self.layout} must be float8_e4m3fn group scales of "
                                 f"shape {groups} ([K/group, N]), got {self.scales.dtype} {tuple(self.scales.shape)}")
            c = self.channel_scales
            if c is None or c.dtype != torch.float32 or tuple(c.shape) != (pn,) or c.device != self.scales.device:
                got = "None" if c is None else f"{c.dtype} {tuple(c.shape)} on {c.device}"
                raise ValueError(f"PackedWeight.channel_scales of layout {self.layout} must be float32 of shape ({pn},) "
                                 f"on {self.scales.device}, got {got}")
        elif self.scales.dtype not in ACT_DTYPES or tuple(self.scales.shape) != groups:
            raise ValueError(f"PackedWeight.scales must be float16/bfloat16 of shape {groups} ([K/group, N]), "
                             f"got {self.scales.dtype} {tuple(self.scales.shape)}")
        elif self.channel_scales is not None:
            raise ValueError(f"PackedWeight.channel_scales is only for the W4A8 layouts {sorted(TWO_LEVEL_LAYOUTS)}; "
                             f"layout {self.layout} takes None")
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
        if self.two_level:  # the kernels' lookup tables, derived once from the group scales
            self.scale_tables = scale_tables(self.scales)

    # ---- per-call state, built once ---------------------------------------------------------------
    def _forget(self) -> None:
        for key in ("_plan", "_converted", "_problems"):
            self.__dict__.pop(key, None)

    def plan(self) -> Plan:
        """What gemm() needs per call, gathered once (buffer lookups on a Module cost ~0.3 us each)."""
        plan = self.__dict__.get("_plan")
        if plan is None:
            two = self.two_level
            plan = Plan(self.data, self.scale_tables if two else self.scales, self.zeros,
                        self.channel_scales if two else None, self.shape, self.padded_shape, self.group_size,
                        self.layout, self.weight_dtype, self.scales.dtype, self.data.device)
            self.__dict__["_plan"] = plan
        return plan

    def scales_for(self, dtype: torch.dtype) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(scales, zeros) in activation dtype `dtype`: the stored ones, or a copy converted once.
        A conversion that would change a value (out of fp16's range or precision) is refused:
        quantize for that dtype instead."""
        if self.two_level:
            raise TypeError(f"layout {self.layout} (W4A8) keeps e4m3 group scales and fp32 per-channel scales; "
                            f"they serve every output dtype as they are")
        if dtype == self.scales.dtype:
            return self.scales, self.zeros
        cache = self.__dict__.setdefault("_converted", {})
        hit = cache.get(dtype)
        if hit is None:
            if dtype not in ACT_DTYPES:
                raise TypeError(f"activation dtype {dtype} is not supported; use torch.bfloat16 or torch.float16")
            pair = []
            for t in (self.scales, self.zeros):
                if t is None:
                    pair.append(None)
                    continue
                c = t.to(dtype)
                if not torch.equal(c.to(t.dtype), t):
                    raise ValueError(f"this PackedWeight's {t.dtype} scales do not convert exactly to {dtype} (out of "
                                     f"range or precision); quantize with act_dtype={dtype} for {dtype} activations")
                pair.append(c)
            hit = cache[dtype] = tuple(pair)
        return hit

    def kernel_tensors(self, out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor],
                                                               Optional[torch.Tensor]]:
        """(data, scales, zeros, w_scales) as a kernel writing `out_dtype` reads them: for W4A8 the
        scale tables and the fp32 per-channel scales, else the scales (and zeros) in `out_dtype`."""
        if self.two_level:
            return self.data, self.scale_tables, None, self.channel_scales
        scales, zeros = self.scales_for(out_dtype)
        return self.data, scales, zeros, None

    def _apply(self, fn, *args, **kwargs):
        self._forget()  # .to()/.cuda() replace the buffers
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs):
        self._forget()  # the loaded extra state re-validates, which also rebuilds W4A8 scale tables
        return super()._load_from_state_dict(*args, **kwargs)

    # ---- metadata --------------------------------------------------------------------------------
    @property
    def scale_dtype(self) -> torch.dtype:
        """The dtype scales are stored in (activations of the other 16-bit dtype work too)."""
        return self.scales.dtype

    @property
    def two_level(self) -> bool:
        """W4A8: e4m3 group scales x fp32 per-channel scales (quant.TWO_LEVEL_LAYOUTS)."""
        return self.layout in TWO_LEVEL_LAYOUTS

    @property
    def zero_point(self) -> bool:
        return self.zeros is not None

    @property
    def per_channel(self) -> bool:
        return self.group_size == self.padded_shape[1]

    @property
    def device(self) -> torch.device:
        return self.data.device

    def nbytes(self) -> int:
        """Bytes a kernel reads for the weight: packed values + scales (+ zeros)."""
        read = (self.data, self.scale_tables, self.channel_scales) if self.two_level else (self.data, self.scales, self.zeros)
        return sum(t.numel() * t.element_size() for t in read if t is not None)

    def get_extra_state(self) -> dict:
        return {"shape": list(self.shape), "padded_shape": list(self.padded_shape), "weight_dtype": self.weight_dtype,
                "group_size": self.group_size, "layout": self.layout, "version": STATE_VERSION}

    def set_extra_state(self, state: dict) -> None:
        state = upgrade_state(state)
        self.shape = tuple(state["shape"])
        self.padded_shape = tuple(state["padded_shape"])
        self.weight_dtype = state["weight_dtype"]
        self.group_size = state["group_size"]
        self.layout = state["layout"]
        self._forget()
        self.validate()

    @classmethod
    def from_state_dict(cls, state: dict, prefix: str = "") -> "PackedWeight":
        meta = upgrade_state(state[prefix + "_extra_state"])
        return cls(state[prefix + "data"], state[prefix + "scales"], state.get(prefix + "zeros"),
                   shape=meta["shape"], weight_dtype=meta["weight_dtype"], group_size=meta["group_size"],
                   layout=meta["layout"], padded_shape=meta["padded_shape"],
                   channel_scales=state.get(prefix + "channel_scales"))

    def to_layout(self, layout: str) -> "PackedWeight":
        """The same weights repacked in another layout (self if it is already in it)."""
        if layout == self.layout:
            return self
        if layout not in LAYOUTS or LAYOUTS[layout].bits != FORMATS[self.weight_dtype].bits:
            fits = [t for t, lay in LAYOUTS.items() if lay.bits == FORMATS[self.weight_dtype].bits]
            raise ValueError(f"layout={layout!r}: {self.weight_dtype} weights can be packed as {fits}")
        if (layout in TWO_LEVEL_LAYOUTS) != self.two_level:
            raise ValueError(f"layout={layout!r}: W4A8 weights (two-level e4m3 x fp32 scales, {sorted(TWO_LEVEL_LAYOUTS)}) "
                             f"and weights with 16-bit scales do not convert into each other; quantize again")
        target = LAYOUTS[layout]
        pn, pk = self.padded_shape
        rule, families = shape_rule(layout, self.weight_dtype, None)
        _check_fits(rule, f"the {', '.join(families)} family", "this weight", self.shape, self.padded_shape,
                    self.group_size, "quantize again with that layout")
        if pn % target.n_multiple or pk % target.k_multiple:
            raise ValueError(f"layout={layout!r} needs N % {target.n_multiple} == 0 and K % {target.k_multiple} == 0; "
                             f"this weight is padded to {self.padded_shape}: quantize again with pad=True and that layout")
        return PackedWeight(target.pack(unpack(self)), self.scales, self.zeros, shape=self.shape,
                            weight_dtype=self.weight_dtype, group_size=self.group_size, layout=layout,
                            padded_shape=self.padded_shape, channel_scales=self.channel_scales)

    def extra_repr(self) -> str:
        n, k = self.shape
        pad = f", padded_shape={self.padded_shape}" if self.padded_shape != self.shape else ""
        group = "per-channel" if self.per_channel else str(self.group_size)
        scales = str(self.scale_dtype).removeprefix('torch.') + (" x float32 per channel" if self.two_level else "")
        return (f"shape=({n}, {k}){pad}, weight={self.weight_dtype}, group_size={group}, "
                f"zero_point={self.zero_point}, scales={scales}, layout={self.layout}")


def upgrade_state(state: dict) -> dict:
    """PackedWeight metadata of any supported version as the current version's."""
    version = state.get("version")
    if version == 1:  # mixgemm 0.1: an arch instead of an arch-free layout tag
        state = {**state, "layout": LEGACY_TAGS.get(state["layout"], state["layout"]),
                 "padded_shape": state.get("padded_shape", state["shape"]), "version": STATE_VERSION}
        state.pop("arch", None)
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"PackedWeight state version {version!r} is not supported (expected 1 or {STATE_VERSION})")
    return state


# ---- which layout, and which shapes, a GPU's kernel families accept --------------------------------
def current_capability(w: Optional[torch.Tensor] = None) -> Optional[int]:
    """Compute capability of w's GPU, else of the current GPU, else None (no GPU here)."""
    if w is not None and w.is_cuda:
        major, minor = torch.cuda.get_device_capability(w.device)
    elif torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
    else:
        return None
    return 10 * major + minor


@functools.cache
def act8_dtype(layout: str, weight_dtype: str) -> Optional[torch.dtype]:
    """The 8-bit activation dtype (torch.float8_e4m3fn or torch.int8, made by quantize_activations)
    that kernels reading `weight_dtype` weights in `layout` take, or None: they take 16-bit ones."""
    short = ACT8_FORMATS.get((layout, weight_dtype))
    return None if short is None else torch_dtype(DType.from_short(short))


def _families_reading(weight_dtype: str, capability: Optional[int], layout: Optional[str] = None,
                      act: Optional[torch.dtype] = None) -> list:
    """Families' specs for the format (and layout; and activation dtype: that 8-bit one, or any
    16-bit one when act is None or 16-bit)."""
    dtype = FORMATS[weight_dtype].dtype
    acts = {ACT8_DTYPES[act]} if act in ACT8_DTYPES else set(ACT_DTYPES.values())
    return [s for s in catalog() if s.weight == dtype and (layout is None or s.layout == layout)
            and (layout is not None or s.act in acts)
            and (capability is None or capability in s.capabilities())]


def choose_layout(weight_dtype: str, capability: Optional[int], act: Optional[torch.dtype] = None,
                  per_channel: bool = False) -> str:
    """The layout read by the family that best serves the format on this GPU (any GPU when capability
    is None) for activations of dtype `act` (None: 16-bit): a family serving every M before one
    limited to small M (the decode family), then the most specialized one (highest lowest
    capability: sm90a code before sm80 code on an H100), then, for per-channel scales, a family made
    for them (on Ampere: CUTLASS's per-channel epilogue before the group-scaled mainloop); group
    scales (per_channel False) prefer families that take them."""
    specs = _families_reading(weight_dtype, capability, act=act)
    if not specs:
        where = f"sm{capability}" if capability is not None else "any GPU"
        acts = f" with {act} activations" if act in ACT8_DTYPES else ""
        served = sorted({s.weight.short for s in catalog() if act in ACT8_DTYPES and s.act == ACT8_DTYPES[act]})
        hint = f" (those take weight_dtype in {served})" if served else ""
        raise ValueError(f"no kernel family serves weight_dtype={weight_dtype!r}{acts} on {where}{hint}; families: "
                         f"{sorted({s.token for s in catalog()})} (`mixgemm list --all`)")
    best = max(specs, key=lambda s: (per_channel or s.shape_rule().groups, s.max_m() is None,
                                     min(s.capabilities()), per_channel and not s.shape_rule().groups,
                                     max(s.capabilities()), s.layout))
    return best.layout


def shape_rule(layout: str, weight_dtype: str, capability: Optional[int]) -> tuple[ShapeRule, list[str]]:
    """The rule a weight must meet so that every family reading `layout` on this GPU serves it at every
    M (the families' own rules, joined), and the families it came from."""
    specs = _families_reading(weight_dtype, capability, layout)
    if not specs:
        raise ValueError(f"layout={layout!r}: no kernel family reads it for {weight_dtype} weights"
                         + (f" on sm{capability}" if capability is not None else ""))
    rule = ShapeRule(LAYOUTS[layout].n_multiple, LAYOUTS[layout].k_multiple, 1)
    for r in dict.fromkeys(s.shape_rule() for s in specs):
        rule = rule.join(r)
    return rule, sorted({s.token for s in specs})


def _format(weight_dtype: str):
    if weight_dtype not in FORMATS:
        raise ValueError(f"weight_dtype={weight_dtype!r} is not supported; choose one of {sorted(FORMATS)}")
    return FORMATS[weight_dtype]


def _act_dtype(act_dtype: Optional[torch.dtype], default: torch.dtype) -> torch.dtype:
    """The dtype scales are stored in: act_dtype if 16-bit, else `default` if 16-bit, else bfloat16
    (8-bit activations: the scales are the epilogue's, stored like the output)."""
    if act_dtype is not None and act_dtype not in ACT_DTYPES and act_dtype not in ACT8_DTYPES:
        raise TypeError(f"act_dtype={act_dtype} is not supported; use torch.bfloat16 or torch.float16 (16-bit "
                        f"activations) or {' or '.join(map(str, ACT8_DTYPES))} (8-bit activations)")
    if act_dtype is None or act_dtype in ACT8_DTYPES:
        return default if default in ACT_DTYPES else torch.bfloat16
    return act_dtype


def _layout_and_rule(weight_dtype: str, arch: Optional[int], layout: Optional[str], like: torch.Tensor,
                     act: Optional[torch.dtype] = None, per_channel: bool = False) -> tuple[str, ShapeRule, str]:
    """(layout, shape rule, "the ... families") for a weight made like `like` (its GPU, unless arch
    says otherwise) and used with activations of dtype `act`, validating arch and an explicit layout."""
    if arch is not None and (not isinstance(arch, int) or arch < 10):
        raise ValueError(f"arch={arch!r} must be a compute capability such as 90 or 86")
    capability = arch if arch is not None else current_capability(like)
    if layout is None:
        layout = choose_layout(weight_dtype, capability, act, per_channel)
    elif layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is unknown; known: {sorted(LAYOUTS)}")
    rule, families = shape_rule(layout, weight_dtype, capability)
    return layout, rule, f"the {', '.join(families)} famil{'ies' if len(families) > 1 else 'y'}"


def _check_fits(rule: ShapeRule, where: str, what: str, shape: tuple[int, int], padded: tuple[int, int],
                group_size: int, fix: str) -> None:
    """Refuse a weight (`shape`, padded to `padded`) or group size the families in `where` cannot serve."""
    (n, k), (pn, pk) = shape, padded
    if pn % rule.n_multiple or pk % rule.k_multiple:
        raise ValueError(f"{what} shape (N={n}, K={k}) does not fit {where}: N must be a multiple of "
                         f"{rule.n_multiple} and K of {rule.k_multiple}; {fix}")
    if group_size != pk and not rule.groups:
        raise ValueError(f"group_size={group_size}: per-channel weight scales only for {where}; pass "
                         f"group_size={PER_CHANNEL} (per-channel) or {NO_SCALE} (no scale)")
    if group_size != pk and group_size % rule.group_multiple:
        raise ValueError(f"group_size={group_size} must be a multiple of {rule.group_multiple} for {where} "
                         f"(or {PER_CHANNEL} for per-channel)")


def _format_values(fmt, weight_dtype: str, values: torch.Tensor, what: str) -> torch.Tensor:
    """A format's values -> the integer codes layouts pack: integers in range (integer formats), or
    the format's float8 dtype (e4m3/e5m2)."""
    if isinstance(fmt, FloatWeightFormat):
        if values.dtype != fmt.torch_dtype:
            raise TypeError(f"{what}.dtype={values.dtype}: {weight_dtype} weights are given as {fmt.torch_dtype} values")
        if not torch.isfinite(values.float()).all():
            raise ValueError(f"{what} contain NaN or Inf; {weight_dtype} weights must be finite")
        return fmt.values_to_codes(values)
    if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
        raise TypeError(f"{what}.dtype={values.dtype}: {weight_dtype} weights are given as integers")
    lo, hi = int(values.min()), int(values.max())
    if lo < fmt.qmin or hi > fmt.qmax:
        raise ValueError(f"{what} span [{lo}, {hi}], outside {weight_dtype}'s range [{fmt.qmin}, {fmt.qmax}]")
    return values.to(torch.int16)


def _convert_only(fmt, weight_dtype: str, w: torch.Tensor, act_dtype: torch.dtype
                  ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """group_size=NO_SCALE: w's values as the format's, per-channel scales of 1.0 and zero terms for
    a zero point of 0 (the same as pack(values, None))."""
    fix = "use a group size (or PER_CHANNEL) to scale it into range"
    if isinstance(fmt, FloatWeightFormat):
        amax = w.abs().max().item() if w.numel() else 0.0
        if amax > fmt.fmax:  # the cast would not refuse it
            raise ValueError(f"group_size={NO_SCALE} (no scale): |w| reaches {amax:.6g}, beyond {weight_dtype}'s "
                             f"largest finite value {fmt.fmax:g}; {fix}")
        values = w.float().to(fmt.torch_dtype)
    else:
        wf = w.float()
        if not torch.equal(wf, wf.round()):
            raise ValueError(f"group_size={NO_SCALE} (no scale): {weight_dtype} needs w to hold integers in "
                             f"[{fmt.qmin}, {fmt.qmax}]; {fix}")
        values = wf.to(torch.int32)
    q = _format_values(fmt, weight_dtype, values, f"w (group_size={NO_SCALE}, no scale)")
    scales = torch.ones(1, w.shape[0], dtype=act_dtype, device=w.device)
    zeros = fmt.zero_term(torch.zeros_like(scales), scales) if fmt.zero_point else None
    return q, scales, zeros


def quantize(w: torch.Tensor, weight_dtype: str = DEFAULT_WEIGHT_DTYPE, group_size: int = DEFAULT_GROUP_SIZE,
             zero_point: Optional[bool] = None, arch: Optional[int] = None,
             act_dtype: Optional[torch.dtype] = None, pad: bool = False, layout: Optional[str] = None) -> PackedWeight:
    """Quantize a Linear weight ``w`` [N, K] (out x in) round-to-nearest and pack it.

    weight_dtype: one of FORMATS ('s4', 's8' symmetric; 'u4', 'u8' with zero points; 'e4m3', 'e5m2'
        8-bit floats, symmetric).
    group_size: k per scale; -1 (PER_CHANNEL) for one scale per output channel; 0 (NO_SCALE) to
        convert only: w must already hold the format's values (integers in its range for
        s4/u4/s8/u8, a zero point of 0; magnitudes up to the largest finite value for e4m3/e5m2,
        rounded to nearest even), stored with per-channel scales of 1.0.
    zero_point: defaults to the format's (False for s4, True for u4); other values are refused.
    arch: compute capability (e.g. 90, 86) of the GPU it will run on; default: w's GPU, else the
        current GPU, else any. It picks the layout (that of the most specialized family running
        there) and the shape rule (every family there must serve the weight at every M).
    act_dtype: the activations it will multiply. 16-bit (bfloat16/float16): the dtype scales are
        stored in (default: w's dtype if 16-bit, else bf16); activations of the other 16-bit dtype
        work too (scales are converted once, if exactly representable). torch.float8_e4m3fn: for
        e4m3 activations quantized per token (quantize_activations; the fp8 x fp8 family):
        weight_dtype='e4m3' with per-channel scales (group_size=-1), stored in w's dtype if 16-bit,
        else bf16, and converted to the output dtype once (fp8 x fp8); or weight_dtype='s4' with
        group scales (W4A8): each group's scale is an e4m3 number times an fp32 per-channel scale
        (the kernels' lookup-table conversion multiplies q by the e4m3 one and rounds to e4m3), and
        each value takes the q in [-8, 7] whose product lies nearest; dequantize() gives the result.
        torch.int8: for s8 activations quantized per token (quantize_activations(x, "s8"); the Ampere
        integer W4A8 kernels): weight_dtype='s4' with per-channel scales (group_size=-1), applied
        with the per-token ones in the fp32 epilogue.
    pad: zero-pad N and K up to what the kernels need, so any shape runs; gemm() pads x along K
        (a copy) and returns a view of the first N columns. The last group may then be partial.
    layout: a layout tag (quant.LAYOUTS) instead of the one `arch` implies.
    """
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w must be a torch.Tensor [N, K], got {type(w).__name__}")
    if w.dim() != 2:
        raise ValueError(f"w must be 2-D [N, K] (out features x in features), got shape {tuple(w.shape)}")
    if w.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"w.dtype={w.dtype} is not supported; use float16, bfloat16 or float32")
    fmt = _format(weight_dtype)
    if zero_point is None:
        zero_point = fmt.zero_point
    if zero_point != fmt.zero_point:
        with_zero = sorted(n for n, f in FORMATS.items() if f.zero_point)
        hint = f"use weight_dtype in {with_zero} for zero points" if zero_point else f"{weight_dtype} always has zero points"
        raise ValueError(f"zero_point={zero_point} is not available for weight_dtype={weight_dtype!r}: {hint}")
    act = act_dtype
    act_dtype = _act_dtype(act_dtype, w.dtype)
    if not isinstance(group_size, int) or isinstance(group_size, bool) or (group_size < 0 and group_size != PER_CHANNEL):
        raise ValueError(f"group_size={group_size!r} must be a positive integer, {PER_CHANNEL} for per-channel, "
                         f"or {NO_SCALE} for no scale")
    if torch.isnan(w).any() or torch.isinf(w).any():
        raise ValueError("w contains NaN or Inf; quantization needs finite weights")
    no_scale = group_size == NO_SCALE
    per_channel = group_size == PER_CHANNEL or no_scale
    layout, rule, where = _layout_and_rule(weight_dtype, arch, layout, w, act, per_channel)
    n, k = w.shape
    pn, pk = n, k
    if pad:
        pn = -(-n // rule.n_multiple) * rule.n_multiple
        step = rule.k_multiple if per_channel else math.lcm(rule.k_multiple, group_size)
        pk = -(-k // step) * step
        w = torch.nn.functional.pad(w, (0, pk - k, 0, pn - n))
    if per_channel:
        group_size = pk
    if pk % group_size:
        raise ValueError(f"group_size={group_size} must divide K={k} (or pass pad=True to zero-pad K to a multiple "
                         f"of it, or {PER_CHANNEL} for per-channel)")
    _check_fits(rule, where, "w", (n, k), (pn, pk), group_size, "pass pad=True to zero-pad")
    if layout in TWO_LEVEL_LAYOUTS:
        if no_scale:
            q, _, _ = _convert_only(fmt, weight_dtype, w, act_dtype)
            g, channel = two_level_scales(torch.ones(pn, 1, device=w.device))
            g = g.t().contiguous()
        else:
            q, g, channel = quantize_w4a8(w, group_size)
        return PackedWeight(LAYOUTS[layout].pack(q), g, None, shape=(n, k), weight_dtype=weight_dtype,
                            group_size=group_size, layout=layout, padded_shape=(pn, pk), channel_scales=channel)
    if no_scale:
        q, scales, zeros = _convert_only(fmt, weight_dtype, w, act_dtype)
    else:
        q, scales, zeros = fmt.quantize(w, group_size, act_dtype)
    return PackedWeight(LAYOUTS[layout].pack(q), scales, zeros, shape=(n, k), weight_dtype=weight_dtype,
                        group_size=group_size, layout=layout, padded_shape=(pn, pk))


def pack(values: torch.Tensor, scales: Optional[torch.Tensor], zero_points: Optional[torch.Tensor] = None, *,
         weight_dtype: str, act_dtype: Optional[torch.dtype] = None, arch: Optional[int] = None,
         layout: Optional[str] = None) -> PackedWeight:
    """Pack weights quantized elsewhere (a GPTQ/AWQ-style checkpoint, or your own quantizer).

    values: [N, K] (out x in): integers in the format's range for s4/u4/s8/u8 (any integer dtype),
        or a tensor of the format's own float8 dtype for e4m3/e5m2.
    scales: [N, K / group_size] (one row per output feature, as the weight), or [N] for per-channel;
        float32, float16 or bfloat16, finite. Converted once to `act_dtype`. None: no scale (stored as
        per-channel scales of 1.0; zero points then default to 0).
    zero_points: u4/u8 only, required there (unless scales is None): integer zero points z,
        [N, K / group_size] (or [N]), in the format's range. The kernels add the zero term
        -z * scale, rounded once to act_dtype.
    The group size is K / scales.shape[1]. Dequantization, as for quantize: q * scale (+ zero term),
    rounded once to the activation dtype; dequantize() returns exactly that.
    act_dtype: as for quantize: the dtype to store scales in (default: the scales' dtype if 16-bit,
        else bfloat16), or torch.float8_e4m3fn for e4m3 activations (scales then as by default; for
        s4 weights (W4A8) each scale becomes an e4m3 group scale times an fp32 per-channel scale,
        the largest of a channel exact, the others rounded to e4m3; dequantize() shows the result).
    arch, layout: as for quantize. N and K must already fit the kernels' shape rule (pad before).
    """
    fmt = _format(weight_dtype)
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"values must be a torch.Tensor, got {type(values).__name__}")
    if values.dim() != 2:
        raise ValueError(f"values must be 2-D [N, K] (out features x in features), got shape {tuple(values.shape)}")
    n, k = values.shape
    q = _format_values(fmt, weight_dtype, values, "values")
    if scales is None:  # no scale: per-channel scales of 1.0 (what quantize(..., group_size=NO_SCALE) stores)
        scales = torch.ones(n, dtype=act_dtype if act_dtype in ACT_DTYPES else torch.bfloat16, device=values.device)
        if fmt.zero_point and zero_points is None:
            zero_points = torch.zeros(n, dtype=torch.int32, device=values.device)
    if not isinstance(scales, torch.Tensor):
        raise TypeError(f"scales must be a torch.Tensor or None, got {type(scales).__name__}")
    if scales.dim() == 1:
        scales = scales.unsqueeze(1)
    if scales.dim() != 2 or scales.shape[0] != n or scales.shape[1] < 1 or k % scales.shape[1]:
        raise ValueError(f"scales must be [N, K / group_size] = [{n}, G] with G dividing K={k}, got shape "
                         f"{tuple(scales.shape)}")
    if scales.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"scales.dtype={scales.dtype} is not supported; use float32, float16 or bfloat16")
    if not torch.isfinite(scales).all():
        raise ValueError("scales contain NaN or Inf")
    act = act_dtype
    act_dtype = _act_dtype(act_dtype, scales.dtype)
    s = scales.to(act_dtype)
    if not torch.isfinite(s).all():
        raise ValueError(f"scales overflow {act_dtype} (largest {scales.abs().max().item():.3g}); pass "
                         f"act_dtype=torch.bfloat16")
    group_size = k // scales.shape[1]
    zero_term = None
    if fmt.zero_point:
        if zero_points is None:
            raise ValueError(f"{weight_dtype} weights need zero_points ([N, K / group_size] integers)")
        if not isinstance(zero_points, torch.Tensor):
            raise TypeError(f"zero_points must be a torch.Tensor, got {type(zero_points).__name__}")
        z = zero_points.unsqueeze(1) if zero_points.dim() == 1 else zero_points
        if tuple(z.shape) != tuple(s.shape):
            raise ValueError(f"zero_points must have the scales' shape {tuple(s.shape)}, got {tuple(zero_points.shape)}")
        z = z.to(s.device, torch.float32)
        if not torch.equal(z, z.round()) or z.min() < fmt.qmin or z.max() > fmt.qmax:
            raise ValueError(f"zero_points must be integers in [{fmt.qmin}, {fmt.qmax}] for {weight_dtype}")
        zero_term = fmt.zero_term(z, s).t().contiguous()
    elif zero_points is not None:
        raise ValueError(f"{weight_dtype} weights are symmetric: zero_points must be None")
    layout, rule, where = _layout_and_rule(weight_dtype, arch, layout, values, act, group_size == k)
    _check_fits(rule, where, "values", (n, k), (n, k), group_size, "pad with zeros first")
    data = LAYOUTS[layout].pack(q.to(s.device))
    if layout in TWO_LEVEL_LAYOUTS:  # W4A8: the scales as e4m3 group scales x fp32 per-channel ones
        g, channel = two_level_scales(scales.to(s.device))
        return PackedWeight(data, g.t().contiguous(), None, shape=(n, k), weight_dtype=weight_dtype,
                            group_size=group_size, layout=layout, channel_scales=channel)
    return PackedWeight(data, s.t().contiguous(), zero_term, shape=(n, k), weight_dtype=weight_dtype,
                        group_size=group_size, layout=layout)


def unpack(pw: PackedWeight) -> torch.Tensor:
    """The integer values q [N, K] (int16) stored in pw (padding included, see pw.padded_shape)."""
    pn, pk = pw.padded_shape
    return LAYOUTS[pw.layout].unpack(pw.data, pn, pk, FORMATS[pw.weight_dtype].dtype.signed)


def dequantize(pw: PackedWeight, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """The exact [N, K] weights the kernels multiply by for activations of `dtype` (default: the
    scales' dtype; for W4A8 weights float32, what their kernels multiply by): q * scale (+ zero) as one fused multiply-add, rounded once. torch.float32: the
    same unrounded, which is what the 8-bit-activation kernels multiply by (their per-channel scale
    applies in the fp32 epilogue; output bf16 and fp16 alike). Rounding q * scale
    first would be a different weight: for u4 the two terms nearly cancel, and a GEMM over such
    weights differs by ~5e-3 (measured on the H100)."""
    n, k = pw.shape
    if pw.two_level:  # W4A8: channel * e4m3(g * q) in fp32 (the channel scale applies in the fp32 epilogue)
        w = dequantize_w4a8(unpack(pw), pw.scales, pw.channel_scales, pw.group_size)[:n, :k]
        return w if dtype in (None, torch.float32) else w.to(dtype)
    dtype = pw.scale_dtype if dtype is None else dtype
    if dtype == torch.float32:  # q * scale (+ zero) exactly, unrounded: what an fp32 epilogue multiplies by
        return FORMATS[pw.weight_dtype].dequantize(unpack(pw), pw.scales, pw.zeros, pw.group_size, dtype)[:n, :k]
    scales, zeros = pw.scales_for(dtype)
    return FORMATS[pw.weight_dtype].dequantize(unpack(pw), scales, zeros, pw.group_size, dtype)[:n, :k]
