"""Shared fixtures. GPU tests skip (with the reason in the summary) where no GPU runs a built
kernel or the kernel library is not built. Without an installed mixgemm the tests import the
checkout's python/ (the generator, packing and dispatch logic need no build)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("mixgemm") is None:
    sys.path.insert(0, str(REPO / "python"))


def gpu_capability() -> int | None:
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return 10 * major + minor


def pytest_collection_modifyitems(config, items):
    cap = gpu_capability()
    import mixgemm._lib as lib
    reason = None
    if cap is None:
        reason = "no CUDA GPU on this machine"
    elif not lib.available():
        reason = "mixgemm kernel library is not built"
    elif not any(cap in caps for _, caps in lib.built_kernels()):
        reason = f"no built kernel runs on this GPU (sm{cap})"
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def repo() -> Path:
    return REPO
