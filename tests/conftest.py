"""Shared fixtures. GPU tests skip (with the reason in the summary) where no GPU of a built
kernel's arch exists or the kernel library is not built."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def gpu_arch() -> int | None:
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return 10 * major + minor


def pytest_collection_modifyitems(config, items):
    arch = gpu_arch()
    import mixgemm._lib as lib
    reason = None
    if arch is None:
        reason = "no CUDA GPU here (GPU tests run on the lent H100)"
    elif not lib.available():
        reason = "mixgemm kernel library is not built"
    elif not any(a == arch for _, a in lib.built_kernels()):
        reason = f"no kernel built for this GPU's arch sm{arch}"
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def repo() -> Path:
    return REPO
