"""Writes kernels_generated/: one .cu per kernel, manifest.json and manifest.cmake.

Deterministic (sorted, no timestamps), incremental (a file is rewritten only when its content
changes, so ninja and ccache keep their work) and clean (stale generated kernels are removed).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from .render import render, render_kernel
from .spec import KernelSpec

MANIFEST_VERSION = 1
GENERATED_PREFIX = "mixgemm_sm"


def cuda_arch(arch: int) -> str:
    """The nvcc arch name a spec's arch compiles for (Hopper kernels need the 'a' features)."""
    return {90: "90a"}.get(arch, str(arch))


def manifest_entry(spec: KernelSpec) -> dict:
    return {
        "name": spec.name(),
        "arch": spec.arch,
        "cuda_arch": cuda_arch(spec.arch),
        "act": spec.act.short,
        "weight": spec.weight.short,
        "scale": spec.scale.name.lower(),
        "zero": spec.zero,
        "out": spec.out.short,
        "tile": list(spec.tile),
        "cluster": list(spec.cluster),
        "schedule": spec.schedule.short,
        "weight_layout": spec.weight_layout,
        "file": f"{spec.name()}.cu",
    }


def manifest_json(specs: list[KernelSpec]) -> str:
    doc = {"version": MANIFEST_VERSION, "kernels": [manifest_entry(s) for s in specs]}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def manifest_cmake(specs: list[KernelSpec]) -> str:
    by_arch: dict[str, list[KernelSpec]] = {}
    for s in specs:
        by_arch.setdefault(cuda_arch(s.arch), []).append(s)
    return render("manifest.cmake.j2", archs=sorted(by_arch), by_arch=by_arch)


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def generate(specs: Iterable[KernelSpec], out: Path) -> dict[str, list[str]]:
    """Emit sources for `specs` into `out`. Returns the file names written, kept and removed."""
    specs = sorted(dict.fromkeys(specs), key=KernelSpec.name)
    out.mkdir(parents=True, exist_ok=True)
    files = {f"{s.name()}.cu": render_kernel(s) for s in specs}
    files["manifest.json"] = manifest_json(specs)
    files["manifest.cmake"] = manifest_cmake(specs)
    report: dict[str, list[str]] = {"written": [], "unchanged": [], "removed": []}
    for name, text in files.items():
        report["written" if write_if_changed(out / name, text) else "unchanged"].append(name)
    for stale in sorted(out.glob(f"{GENERATED_PREFIX}*.cu")):
        if stale.name not in files:
            stale.unlink()
            report["removed"].append(stale.name)
    return report


def read_manifest(path: Path) -> list[dict]:
    doc = json.loads(Path(path).read_text())
    if doc.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path}: manifest version {doc.get('version')!r}, expected {MANIFEST_VERSION}")
    return doc["kernels"]
