"""Each family states its shape rule once in Python (KernelSpec.shape_rule: quantize, dispatch and
explain use it) and once in its C++ check. Compare the two through the built library on a grid of
shapes: the C++ check refuses (INVALID_ARGUMENT) exactly what the Python rule refuses. Shape checks
come before the device check, so this runs on a machine without a GPU (CI)."""
import itertools

import pytest

from mixgemm import _lib
from mixgemm.generator import KernelSpec
from mixgemm.generator.dtypes import ScaleMode
from mixgemm.quant import TWO_LEVEL_LAYOUTS

INVALID_ARGUMENT = 1
ALIGNED = 1 << 20  # any 16-byte aligned address: check() never dereferences

pytestmark = pytest.mark.skipif(not _lib.available(), reason="needs the built kernel library")

NS = (16, 32, 48, 4096, 4104, 8)
KS = (16, 64, 96, 128, 4096, 4000, 7392)
GROUPS = (16, 32, 64, 100, 128, "K")


def problem(lib, spec, m, n, k, g):
    p = lib.Problem()
    p.x = p.w = p.scales = p.y = ALIGNED
    p.zeros = ALIGNED if spec.zero else 0
    p.x_scales = ALIGNED if spec.act.bits == 8 else 0  # 8-bit activations come with per-token scales
    p.w_scales = ALIGNED if takes_w_scales(spec) else 0  # W4A8: per-channel scales on top of the group scales
    p.m, p.n, p.k, p.group_size = m, n, k, (k if g == "K" else g)
    return p


def takes_w_scales(spec) -> bool:
    return spec.layout in TWO_LEVEL_LAYOUTS


def group(spec) -> object:
    """A group size every kernel of the family serves at K = 4096."""
    return "K" if spec.scale == ScaleMode.CHANNEL else 128


@pytest.mark.parametrize("name", [n for n, _ in _lib.built_kernels()])
def test_cpp_check_states_the_family_rule(name):
    lib = _lib.load()
    spec = KernelSpec.parse(name)
    index = [n for n, _ in _lib.built_kernels()].index(name)
    disagreements = []
    for n, k, g in itertools.product(NS, KS, GROUPS):
        group = k if g == "K" else g
        python = spec.shape_rejection(n, k, group)
        status, msg = lib.check(index, problem(lib, spec, 1, n, k, g))
        cpp_refuses = status == INVALID_ARGUMENT
        if cpp_refuses != (python is not None):
            disagreements.append((n, k, group, python, status, msg))
    assert not disagreements, disagreements[:5]


@pytest.mark.parametrize("name", [n for n, _ in _lib.built_kernels()])
def test_cpp_check_refuses_fields_the_kernel_does_not_take(name):
    lib = _lib.load()
    spec = KernelSpec.parse(name)
    index = [n for n, _ in _lib.built_kernels()].index(name)
    p = problem(lib, spec, 1, 4096, 4096, group(spec))
    p.bias = ALIGNED  # every kernel fuses bias (on a machine without a GPU, the device check refuses next)
    status, msg = lib.check(index, p)
    assert status != INVALID_ARGUMENT, msg
    p.bias = ALIGNED + 2
    status, msg = lib.check(index, p)
    assert status == INVALID_ARGUMENT and "bias" in msg
    p = problem(lib, spec, 1, 4096, 4096, group(spec))
    p.zeros = 0 if spec.zero else ALIGNED
    status, msg = lib.check(index, p)
    assert status == INVALID_ARGUMENT and "zeros" in msg
    limit = spec.max_m()
    if limit is not None:
        status, msg = lib.check(index, problem(lib, spec, limit + 1, 4096, 4096, group(spec)))
        assert status == INVALID_ARGUMENT and "m" in msg.lower()
    p = problem(lib, spec, 1, 4096, 4096, group(spec))
    p.x = ALIGNED + 2
    status, msg = lib.check(index, p)
    assert status == INVALID_ARGUMENT and "x" in msg
    p = problem(lib, spec, 1, 4096, 4096, group(spec))
    p.flags = lib.FLAG_INPUTS_READY | lib.FLAG_WEIGHTS_READY  # known promises: accepted by every kernel
    status, msg = lib.check(index, p)
    assert status != INVALID_ARGUMENT, msg
    p.flags = 4
    status, msg = lib.check(index, p)
    assert status == INVALID_ARGUMENT and "flags" in msg and "MIXGEMM_FLAG_WEIGHTS_READY" in msg
    p = problem(lib, spec, 1, 4096, 4096, group(spec))
    p.x_scales = 0 if spec.act.bits == 8 else ALIGNED  # 8-bit activations need them, 16-bit ones take none
    status, msg = lib.check(index, p)
    assert status == INVALID_ARGUMENT and "x_scales" in msg
    p = problem(lib, spec, 1, 4096, 4096, group(spec))
    p.w_scales = 0 if takes_w_scales(spec) else ALIGNED  # W4A8 kernels need them, others take none
    status, msg = lib.check(index, p)
    assert status == INVALID_ARGUMENT and "w_scales" in msg
