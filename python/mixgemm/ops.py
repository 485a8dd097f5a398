"""The torch.library op ``mixgemm::gemm`` and the Python API around it.

``gemm`` validates every argument before anything reaches the GPU, then calls the op; the op
picks the kernel (unless forced) with the real M and launches on the current CUDA stream.
"""
from __future__ import annotations

import os
import weakref
from typing import NamedTuple, Optional

import torch

from . import _lib, dispatch
from .packed import PackedWeight, Plan, act8_dtype
from .quant import ACT8_DTYPES, ACT_DTYPES

_workspace_bytes: dict[tuple, int] = {}
_workspaces: dict[tuple, torch.Tensor] = {}
_problems: dict[tuple, object] = {}
# NOTE(overhead): torch.cuda.current_stream() builds a Stream object (~1.5 us); Inductor's raw getter
# returns the cudaStream_t as an int. Fall back to the public API where a torch lacks it.
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None) or (
    lambda device: torch.cuda.current_stream(device).cuda_stream)


def _ptr(t: Optional[torch.Tensor]) -> int:
    return t.data_ptr() if t is not None else 0


def base_problem(data: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor], n: int, k: int,
                 group_size: int, split_k: int = 0, w_scales: Optional[torch.Tensor] = None):
    """The C problem struct with the per-weight fields set, built once per weight (a call then only
    passes x, y, M and the workspace). w_scales: the [N] fp32 per-channel scales of W4A8 weights."""
    key = (data.data_ptr(), scales.data_ptr(), _ptr(zeros), n, k, group_size, split_k, _ptr(w_scales))
    p = _problems.get(key)
    if p is None:
        p = _lib.load().Problem()
        p.w, p.scales, p.n, p.k, p.group_size = key[0], key[1], n, k, group_size
        p.zeros, p.split_k, p.w_scales = key[2], split_k, key[7]
        _problems[key] = p
    return p


def workspace(device: int, stream: int, nbytes: int) -> torch.Tensor:
    """Zero-initialized scratch per (device, stream), grown on demand. Kernels that use it leave
    their counters at zero when they finish, so one stream's launches can share it back to back."""
    ws = _workspaces.get((device, stream))
    if ws is None or ws.numel() < nbytes:
        ws = _workspaces[(device, stream)] = torch.zeros(max(nbytes, 1 << 16), dtype=torch.uint8,
                                                         device=torch.device("cuda", device))
    return ws


_current_device = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device


class _Launch(NamedTuple):
    """Everything a call needs once the kernel is chosen, cached per (weight, dtype, M, options)."""
    index: int
    base: object          # _C.Problem with the per-weight fields
    workspace_bytes: int


_launches: dict[tuple, _Launch] = {}


def _prepare(index: int, data: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor], m: int, n: int,
             k: int, group_size: int, split_k: int, device: int, w_scales: Optional[torch.Tensor] = None) -> _Launch:
    lib = _lib.load()
    base = base_problem(data, scales, zeros, n, k, group_size, split_k, w_scales)
    # per device: split plans (decode, stream-K), hence workspace sizes, depend on the SM count
    wkey = (index, m, n, k, group_size, split_k, device)
    ws_bytes = _workspace_bytes.get(wkey)
    if ws_bytes is None:
        probe = lib.Problem()
        probe.m, probe.n, probe.k, probe.group_size, probe.split_k = m, n, k, group_size, split_k
        with torch.cuda.device(device):
            ws_bytes = _workspace_bytes[wkey] = lib.workspace_bytes(index, probe)
    return _Launch(index, base, ws_bytes)


# NOTE(inputs ready): two promises let a kernel that overlaps the launch before it (programmatic
# dependent launch) read its inputs early; both rest on torch's version counters, which every
# in-place write through torch bumps.
# - Weights (MIXGEMM_FLAG_WEIGHTS_READY): w, scales and zeros unmodified since an earlier launch on
#   this stream read them. That launch read them only after whatever wrote them had completed, and
#   every later kernel of the stream starts after that, so a later launch may read them early.
#   While a CUDA graph is captured, unmodified since any earlier launch (any stream) is enough: a
#   writer enqueued before the capture began has completed before the graph's first kernel starts
#   (a graph launch waits for the work before it), and a write captured into the graph bumps the
#   version. Recorded per weight under a weak reference: a dead weight drops its entry, so a new
#   tensor at the same address never inherits it.
# - x (MIXGEMM_FLAG_INPUTS_READY, only with ready weights): the x of the last decode-sized launch per
#   (device, stream) is held (so its memory cannot be reused while tracked: at most 64 rows) with its
#   version counter. A launch whose x is that tensor (or a view of it), unmodified since, knows that
#   x was complete before the previous launch began; q/k/v and gate/up projections of one x overlap.
# MIXGEMM_INPUTS_READY=0 turns both off. Writes that bypass torch (a raw pointer) between two
# launches are what this cannot see; inference tensors keep no version counter and are never flagged.
_last_x: dict[tuple[int, int], tuple[torch.Tensor, tuple]] = {}  # (x, (address, version, shape))
_seen_weights: dict[tuple[int, int], list] = {}  # (device, w address) -> [weakref(w), versions, streams]
_INPUTS_READY = os.environ.get("MIXGEMM_INPUTS_READY", "1") != "0"
_TRACK_MAX_ROWS = 64


def _forget_weight(key: tuple[int, int]) -> None:
    _seen_weights.pop(key, None)


def _weights_ready(device: int, stream: int, weights: tuple) -> bool:
    """True when this weight (data, then its other per-weight tensors: scales, zeros, w_scales, any
    of them None) was read by an earlier launch on this stream (or on any stream, while a graph is
    captured) and none of its tensors changed since; records this launch either way."""
    data = weights[0]
    if any(t is not None and t.is_inference() for t in weights):
        return False
    versions = tuple((t._version, t.data_ptr()) if t is not None else (-1, 0) for t in weights)
    key = (device, data.data_ptr())
    seen = _seen_weights.get(key)
    if seen is not None and seen[1] == versions and seen[0]() is data:
        if stream in seen[2]:
            return True
        if torch.cuda.is_current_stream_capturing():
            return True
        seen[2].add(stream)
        return False
    # a captured launch runs only when the graph does: it does not order this stream's later work
    streams = set() if torch.cuda.is_current_stream_capturing() else {stream}
    _seen_weights[key] = [weakref.ref(data, lambda _ref, key=key: _forget_weight(key)), versions, streams]
    return False


def _run(plan: _Launch, x: torch.Tensor, out: torch.Tensor, device: int, weights: tuple,
         bias: Optional[torch.Tensor] = None, x_scale: Optional[torch.Tensor] = None) -> None:
    """Launch `plan` on the current stream; weights = (data, scales, zeros, w_scales) of the packed
    weight, for the ready flags (NOTE(inputs ready)); x_scale: [M] fp32 per-token scales of 8-bit activations."""
    if device != _current_device():
        with torch.cuda.device(device):
            return _run(plan, x, out, device, weights, bias, x_scale)
    lib = _lib.load()
    stream = _raw_stream(device)
    ws = workspace(device, stream, plan.workspace_bytes).data_ptr() if plan.workspace_bytes else 0
    x_ptr = x.data_ptr()
    flags = 0
    if _INPUTS_READY:
        ready = _weights_ready(device, stream, weights)
        if ready:
            flags = lib.FLAG_WEIGHTS_READY
        if x.is_inference() or x.shape[0] > _TRACK_MAX_ROWS:  # inference tensors keep no version counter
            _last_x.pop((device, stream), None)
        else:
            token = (x_ptr, x._version, x.shape)
            prev = _last_x.get((device, stream))
            if ready and prev is not None and prev[1] == token:
                flags |= lib.FLAG_INPUTS_READY
            _last_x[(device, stream)] = (x, token)
    lib.run(plan.index, plan.base, x_ptr, out.data_ptr(), x.shape[0], ws, plan.workspace_bytes, stream, flags,
            bias.data_ptr() if bias is not None else 0, x_scale.data_ptr() if x_scale is not None else 0)


def launch(index: int, x: torch.Tensor, data: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor],
           out: torch.Tensor, group_size: int, split_k: int = 0, bias: Optional[torch.Tensor] = None,
           x_scale: Optional[torch.Tensor] = None, w_scales: Optional[torch.Tensor] = None) -> None:
    """Run built kernel `index` into `out` [M, N] on the current stream (x: [M, K], contiguous).
    split_k >= 1 forces that many K-slices on kernels that split K (tests use it); bias [N] is
    added in the kernel; x_scale [M] fp32 for 8-bit activations; w_scales [N] fp32 for W4A8."""
    m, k = x.shape
    device = x.device.index
    _run(_prepare(index, data, scales, zeros, m, out.shape[1], k, group_size, split_k, device, w_scales), x, out,
         device, (data, scales, zeros, w_scales), bias, x_scale)


def autotune_enabled() -> bool:
    """MIXGEMM_AUTOTUNE=0 turns first-use timing off (dispatch then uses the analytical estimate)."""
    return os.environ.get("MIXGEMM_AUTOTUNE", "1") != "0"


def autotune(key: dispatch.DispatchKey, x: torch.Tensor, data: torch.Tensor, scales: torch.Tensor,
             zeros: Optional[torch.Tensor], n: int, k: int, group_size: int, deterministic: bool,
             x_scale: Optional[torch.Tensor] = None, out_dtype: Optional[torch.dtype] = None,
             w_scales: Optional[torch.Tensor] = None) -> Optional[dispatch.Choice]:
    """Time the likeliest candidates on this problem (x's M, the real weight; which ones:
    dispatch.autotune_candidates) and remember the fastest for its M bucket, as a profile entry
    would: for shapes no profile covers or covers only through a nearby shape, and GPUs without one. Each candidate runs with L2 flushed
    before every timed call (as `mixgemm tune` measures), on the current stream, into a scratch
    output; ranking then credits PDL overlap as dispatch does. None when fewer than two kernels are
    candidates. Not for use while a CUDA graph is being captured (nothing can be timed then)."""
    device = x.device.index
    m = x.shape[0]
    exp = dispatch.explain_problem(key, m, n, k, group_size, device, deterministic)
    by_name = dispatch.built_by_name()
    cands = dispatch.autotune_candidates(exp.candidates, {nm: b.spec.token for nm, b in by_name.items()})
    # a nearby profiled shape's three best (the transfer can misrank families: NOTE(transfer))
    cands += [name for name in exp.prior[:dispatch.AUTOTUNE_PRIOR] if name not in cands]
    if len(cands) < 2:
        return None
    from .bench import event_us  # noqa: PLC0415 (bench imports ops)
    cap = dispatch.capability(device)
    flush = torch.empty(64 << 20, dtype=torch.uint8, device=x.device)
    out = torch.empty((m, n), dtype=out_dtype or x.dtype, device=x.device)
    times: dict[str, float] = {}
    with torch.cuda.device(device):
        plans = {name: _prepare(by_name[name].index, data, scales, zeros, m, n, k, group_size, 0, device, w_scales)
                 for name in cands}
        # NOTE(noise): interleaved rounds, the best median counts (as `mixgemm tune` measures): on
        # small layers the candidates lie within a microsecond or two, and one round of 7 picked a
        # 32-token decode kernel for M = 1 (H100, 2048x1792).
        for _ in range(dispatch.AUTOTUNE_ROUNDS):
            for name, plan in plans.items():
                t = event_us(lambda plan=plan: _run(plan, x, out, device, (data, scales, zeros, w_scales), None,
                                                    x_scale),
                             reps=5, before=flush.zero_)
                times[name] = min(times.get(name, t), t)
    best = min(times, key=lambda nm: dispatch.rank_key(by_name[nm].spec, times[nm], cap))
    akey = dispatch.autotune_key(key, m, n, k, group_size, device, deterministic)
    dispatch.record_autotuned(akey, best, round(times[best], 2))
    return dispatch.Choice(by_name[best].spec, by_name[best].index, "autotuned on first use", times[best])


def _forward(x: torch.Tensor, data: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor],
             n: int, k: int, group_size: int, layout: str, weight_dtype: str, kernel: str,
             deterministic: bool = False, bias: Optional[torch.Tensor] = None,
             x_scale: Optional[torch.Tensor] = None, out_dtype: Optional[torch.dtype] = None,
             w_scales: Optional[torch.Tensor] = None) -> torch.Tensor:
    if x.data_ptr() % 16:
        x = x.clone()  # NOTE(alignment): kernels load x in 16-byte vectors; an offset view is copied
    if bias is not None and (bias.data_ptr() % 16 or not bias.is_contiguous()):
        bias = bias.clone(memory_format=torch.contiguous_format)  # a fresh, aligned copy: read in 16-byte vectors
    m = x.shape[0]
    device = x.device
    # NOTE(overhead): one lookup per call; the weight is identified by its buffers and shape
    lkey = (data.data_ptr(), scales.data_ptr(), zeros.data_ptr() if zeros is not None else 0, n, k, group_size,
            layout, weight_dtype, x.dtype, m, kernel, deterministic, device.index, out_dtype)
    plan = _launches.get(lkey)
    if plan is None:
        dkey = dispatch.key(layout, x.dtype, weight_dtype, zeros is not None, out_dtype)
        choice = dispatch.choose(dkey, m, n, k, group_size, device.index, kernel or None, deterministic)
        keep = True
        if choice.tentative and autotune_enabled():
            if torch.cuda.is_current_stream_capturing():
                keep = False  # the capture keeps the estimate; the next eager call times it
            else:
                choice = autotune(dkey, x, data, scales, zeros, n, k, group_size, deterministic, x_scale,
                                  out_dtype, w_scales) or choice
        plan = _prepare(choice.index, data, scales, zeros, m, n, k, group_size, 0, device.index, w_scales)
        if keep:
            _launches[lkey] = plan
    out = torch.empty((m, n), dtype=out_dtype or x.dtype, device=device)
    _run(plan, x, out, device.index, (data, scales, zeros, w_scales), bias, x_scale)
    return out


@torch.library.custom_op("mixgemm::gemm", mutates_args=())
def gemm_op(x: torch.Tensor, data: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor],
            n: int, k: int, group_size: int, layout: str, weight_dtype: str, kernel: str,
            deterministic: bool = False, bias: Optional[torch.Tensor] = None,
            x_scale: Optional[torch.Tensor] = None, out_dtype: Optional[torch.dtype] = None,
            w_scales: Optional[torch.Tensor] = None) -> torch.Tensor:
    """y[M, N] = x[M, K] @ dequant(W)^T (+ bias [N], added in fp32 before the one rounding) for a
    2-D, contiguous, validated x (see gemm()); scales, zeros and bias in the output dtype (x's dtype
    unless out_dtype is given: 8-bit activations, with x_scale [M] fp32; W4A8 weights read their
    scale tables and w_scales [N] fp32)."""
    return _forward(x, data, scales, zeros, n, k, group_size, layout, weight_dtype, kernel, deterministic, bias,
                    x_scale, out_dtype, w_scales)


@gemm_op.register_fake
def _(x, data, scales, zeros, n, k, group_size, layout, weight_dtype, kernel, deterministic=False, bias=None,
      x_scale=None, out_dtype=None, w_scales=None):
    return x.new_empty((x.shape[0], n), dtype=out_dtype or x.dtype)


def _check_args(x, pw, bias, out_dtype, x_scale=None) -> tuple[Plan, torch.dtype]:
    """Validate a call before anything reaches the GPU: (the weight's plan, the output dtype)."""
    if not isinstance(pw, PackedWeight):
        raise TypeError(f"pw must be a mixgemm.PackedWeight (from mixgemm.quantize), got {type(pw).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor [..., K], got {type(x).__name__}")
    plan = pw.plan()
    n, k = plan.shape
    if x.dim() < 1 or x.shape[-1] != k:
        raise ValueError(f"x.shape={tuple(x.shape)} does not match the weight: the last dim must be K={k}")
    fp8 = x.dtype in ACT8_DTYPES  # 8-bit activations (e4m3 or s8) with per-token scales
    if x.dtype not in ACT_DTYPES and not fp8:
        raise TypeError(f"x.dtype={x.dtype} is not supported; the kernels take torch.bfloat16 or torch.float16 "
                        f"activations, or {' or '.join(map(str, ACT8_DTYPES))} ones with x_scale "
                        f"(mixgemm.quantize_activations)")
    if not x.is_cuda:
        raise ValueError(f"x is on {x.device}; mixgemm kernels run on CUDA devices: move x and pw with .cuda()")
    if plan.device != x.device:
        raise ValueError(f"x is on {x.device} but pw is on {plan.device}: move pw with pw.to(x.device)")
    wants = act8_dtype(plan.layout, plan.weight_dtype)
    if wants is not None and fp8 and x.dtype != wants:
        raise ValueError(f"x is {x.dtype} but this PackedWeight (layout {plan.layout}) serves {wants} activations: "
                         f"quantize x with mixgemm.quantize_activations(x, {'s8' if wants == torch.int8 else 'e4m3'!r})")
    if fp8 != (wants is not None):
        if fp8:
            raise ValueError(f"x is {x.dtype} but this PackedWeight (layout {plan.layout}) serves 16-bit activations; "
                             f"quantize the weight with act_dtype={x.dtype} (weight_dtype='e4m3', group_size=-1 for "
                             f"fp8 x fp8; weight_dtype='s4' for W4A8)")
        fmt = "s8" if wants == torch.int8 else "e4m3"
        raise ValueError(f"x is {x.dtype} but this PackedWeight (layout {plan.layout}) serves {fmt} activations: "
                         f"pass xq, x_scale = mixgemm.quantize_activations(x, {fmt!r}) and gemm(xq, pw, x_scale=x_scale)")
    rows = x.shape[:-1]
    if fp8:
        if x_scale is None:
            raise ValueError(f"x is {x.dtype}: pass x_scale, its per-token fp32 scales of shape {tuple(rows)} "
                             f"(mixgemm.quantize_activations returns both)")
        if not isinstance(x_scale, torch.Tensor) or x_scale.dtype != torch.float32 or \
                tuple(x_scale.shape) not in (tuple(rows), tuple(rows) + (1,)):
            got = (f"{x_scale.dtype} {tuple(x_scale.shape)}" if isinstance(x_scale, torch.Tensor)
                   else type(x_scale).__name__)
            raise ValueError(f"x_scale must be a float32 tensor of shape {tuple(rows)} (one scale per token), got {got}")
        if x_scale.device != x.device:
            raise ValueError(f"x_scale is on {x_scale.device}; it must be on {x.device} with x")
        if out_dtype is None:
            out_dtype = torch.bfloat16
        if out_dtype not in ACT_DTYPES:
            raise ValueError(f"out_dtype={out_dtype} is not supported for {x.dtype} activations; use torch.bfloat16 "
                             f"or torch.float16")
    else:
        if x_scale is not None:
            raise ValueError(f"x_scale is for 8-bit activations; x is {x.dtype} (drop x_scale)")
        if out_dtype is not None and out_dtype != x.dtype:
            raise ValueError(f"out_dtype={out_dtype}: the 16-bit-activation kernels write the activation dtype "
                             f"({x.dtype}); pass out_dtype=None and cast the result")
        out_dtype = x.dtype
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (n,):
            raise ValueError(f"bias must be a tensor of shape ({n},), got "
                             f"{tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__}")
        if bias.device != x.device or bias.dtype != out_dtype:
            raise ValueError(f"bias is {bias.dtype} on {bias.device}; it must be {out_dtype} (the output dtype) "
                             f"on {x.device}")
    return plan, out_dtype


def gemm(x: torch.Tensor, pw: PackedWeight, bias: Optional[torch.Tensor] = None,
         out_dtype: Optional[torch.dtype] = None, kernel: Optional[str] = None,
         deterministic: bool = False, x_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Linear semantics: ``y = x @ dequantize(pw).T (+ bias)``, y of shape [..., N]; bias [N] in the
    output dtype is added inside the kernel, in fp32 before the result's one rounding.

    x: bfloat16/float16 activations, or 8-bit ones quantized per token with their fp32 scales in
        x_scale [...] (see quantize_activations): then
        ``y = (x * x_scale[..., None]) @ dequantize(pw, torch.float32).T``, pw made with the same
        act_dtype: torch.float8_e4m3fn (e4m3 weights: fp8 x fp8; s4 weights: W4A8 on Hopper) or
        torch.int8 (s4 weights: integer W4A8, the Ampere family).
    out_dtype: 16-bit activations write their own dtype (None); 8-bit ones bf16 (default) or fp16.
    kernel: force a built kernel by name (see mixgemm.kernels()); by default the dispatcher picks.
    deterministic: only kernels whose results are bit-identical run to run AND independent of the
        batch a row is in (one reduction order at every M: the sm90 data-parallel kernels). Without
        it every kernel is still run-to-run reproducible, but the decode family (M <= 64) and the
        stream-K kernels (whose split depends on M) round differently from them, so a row's last
        bits can depend on the batch size.
    """
    p, out = _check_args(x, pw, bias, out_dtype, x_scale)
    n, k = p.shape
    pn, pk = p.padded_shape
    x2 = x if x.dim() == 2 else x.reshape(-1, k)  # NOTE(overhead): a reshape costs ~1.5 us
    if x2.shape[0] == 0:
        y = x.new_empty((0, n), dtype=out)
    else:
        if pk != k:
            x2 = torch.nn.functional.pad(x2.view(torch.uint8), (0, pk - k)).view(x2.dtype) if x_scale is not None \
                else torch.nn.functional.pad(x2, (0, pk - k))
        x2 = x2.contiguous()  # TMA reads dense rows
        xs = None if x_scale is None else x_scale.reshape(-1).contiguous()
        # NOTE(overhead): eager calls skip the torch.library dispatcher (~10 us); traced code needs the op
        scales, zeros = (p.scales, p.zeros) if out == p.scale_dtype or p.w_scales is not None else pw.scales_for(out)
        op = gemm_op if torch.compiler.is_compiling() else _forward
        b = bias if bias is None or pn == n else torch.nn.functional.pad(bias, (0, pn - n))
        y = op(x2, p.data, scales, zeros, pn, pk, p.group_size, p.layout, p.weight_dtype, kernel or "",
               deterministic, b, xs, None if xs is None else out, p.w_scales)
        if pn != n:
            y = y[:, :n]
    return y if x.dim() == 2 else y.reshape(*x.shape[:-1], n)


def kernels() -> list[str]:
    """Names of the kernels compiled into this installation."""
    return [name for name, _ in _lib.built_kernels()]


def explain(x: torch.Tensor, pw: PackedWeight, out_dtype: Optional[torch.dtype] = None,
            x_scale: Optional[torch.Tensor] = None) -> dispatch.Explanation:
    """Which kernel gemm(x, pw) would take, the candidates, the rejected ones and why (print it)."""
    _, out = _check_args(x, pw, None, out_dtype, x_scale)
    pn, pk = pw.padded_shape
    m = x.numel() // pw.shape[1]
    fp8 = x.dtype in ACT8_DTYPES
    return dispatch.explain_problem(dispatch.key(pw.layout, x.dtype, pw.weight_dtype, pw.zero_point,
                                                 out if fp8 else None), m, pn, pk, pw.group_size, x.device.index)


ACT8_CODES = {"e4m3": torch.float8_e4m3fn, "s8": torch.int8}
"""quantize_activations' formats and the dtype of their codes."""


def _quantize_rows(x: torch.Tensor, dtype: str = "e4m3") -> tuple[torch.Tensor, torch.Tensor]:
    """(xq [M, K] e4m3 or s8, scale [M] fp32) of a 2-D, contiguous, validated 16-bit x (quantize_activations)."""
    if x.data_ptr() % 16:
        x = x.clone()  # rows are read in 16-byte vectors
    m, k = x.shape
    xq = torch.empty((m, k), dtype=ACT8_CODES[dtype], device=x.device)
    scale = torch.empty((m,), dtype=torch.float32, device=x.device)
    if m:
        device = x.device.index
        if device != _current_device():  # NOTE(overhead): a device context costs microseconds; enter it only if needed
            with torch.cuda.device(device):
                return _quantize_rows(x, dtype)
        lib = _lib.load()
        quantize_rows = lib.quantize_rows_s8 if dtype == "s8" else lib.quantize_rows_e4m3
        quantize_rows(x.data_ptr(), lib.DTYPE_BF16 if x.dtype == torch.bfloat16 else lib.DTYPE_F16,
                               xq.data_ptr(), scale.data_ptr(), m, k, _raw_stream(device))
    return xq, scale


@torch.library.custom_op("mixgemm::quantize_activations", mutates_args=())
def quantize_activations_op(x: torch.Tensor, dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The op traced code calls; eager calls go straight to _quantize_rows (NOTE(overhead))."""
    return _quantize_rows(x, dtype)


@quantize_activations_op.register_fake
def _(x, dtype):
    return (torch.empty_like(x, dtype=ACT8_CODES[dtype]), x.new_empty((x.shape[0],), dtype=torch.float32))


def quantize_activations(x: torch.Tensor, dtype: str = "e4m3") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token dynamic quantization for the 8-bit-activation kernels, one fused kernel.

    dtype "e4m3": ``scale = amax(|x|, dim=-1) / 448`` (1 for an all-zero row) and ``xq = e4m3(x / scale)``
    rounded to nearest even, saturated to +-448 (torch.float8_e4m3fn codes; a NaN in a row gives NaN
    codes there, an Inf makes that row's scale Inf). dtype "s8" (the Ampere integer W4A8 kernels):
    ``scale = amax / 127`` and ``xq = round(x / scale)`` to nearest even, clamped to [-127, 127]
    (torch.int8 codes; a row holding a NaN gets a NaN scale, so its outputs are NaN).
    x ~= xq * scale[..., None]. Returns (xq of x's shape, scale of shape x.shape[:-1] in float32), ready
    for gemm(xq, pw, x_scale=scale). x: CUDA bfloat16/float16, last dim a multiple of 8."""
    if dtype not in ACT8_CODES:
        raise ValueError(f"dtype={dtype!r} is not supported; activations are quantized to 'e4m3' or 's8' (e5m2 "
                         f"holds less precision and no kernel takes it)")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor [..., K], got {type(x).__name__}")
    if x.dtype not in ACT_DTYPES:
        raise TypeError(f"x.dtype={x.dtype} is not supported; quantize bfloat16 or float16 activations")
    if not x.is_cuda:
        raise ValueError(f"x is on {x.device}; quantize_activations runs on CUDA devices")
    if x.dim() < 1 or x.shape[-1] % 8 or x.shape[-1] == 0:
        raise ValueError(f"x.shape={tuple(x.shape)}: the last dim must be a positive multiple of 8 (pad K with zeros)")
    k = x.shape[-1]
    x2 = x.reshape(-1, k).contiguous()
    xq, scale = (quantize_activations_op if torch.compiler.is_compiling() else _quantize_rows)(x2, dtype)
    return xq.reshape(x.shape), scale.reshape(x.shape[:-1])
