"""Writes a folder of generated kernels: one .cu per kernel, manifest.json and manifest.cmake.

Deterministic (sorted, no timestamps), incremental (a file is rewritten only when its content
changes, so ninja and ccache keep their work) and clean (stale generated kernels are removed).
"""
from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path
from typing import Iterable, Optional

from .family import KernelSpec
from .render import render, render_kernel

MANIFEST_VERSION = 2
GENERATED_PREFIX = "mixgemm_"


def _plain(v):
    if isinstance(v, enum.Enum):
        return getattr(v, "short", v.value)
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def manifest_entry(spec: KernelSpec, targets: tuple[str, ...]) -> dict:
    fields = {f.name: _plain(getattr(spec, f.name)) for f in dataclasses.fields(spec)}
    return {"name": spec.name(), "family": spec.token, "fields": fields, "targets": list(targets),
            "capabilities": list(spec.capabilities(targets)), "weight_layout": spec.layout,
            "deterministic": spec.deterministic, "file": f"{spec.name()}.cu"}


def gencode(target: str) -> str:
    return f"-gencode=arch=compute_{target},code=sm_{target}"


def plan(specs: Iterable[KernelSpec], archs: Optional[Iterable[str]]) -> list[tuple[KernelSpec, tuple[str, ...]]]:
    """(spec, targets) for each spec with code for the wanted archs (None: every target), sorted."""
    archs = None if archs is None else list(archs)
    out = [(s, s.targets(archs)) for s in sorted(dict.fromkeys(specs), key=KernelSpec.name)]
    return [(s, t) for s, t in out if t]


def generate(specs: Iterable[KernelSpec], out: Path, archs: Optional[Iterable[str]] = None) -> dict[str, list[str]]:
    """Emit sources for `specs` (compiled for `archs`, default all of each kernel's targets) into
    `out`. Returns the file names written, kept and removed."""
    planned = plan(specs, archs)
    out.mkdir(parents=True, exist_ok=True)
    files = {f"{s.name()}.cu": render_kernel(s, t) for s, t in planned}
    files["manifest.json"] = json.dumps({"version": MANIFEST_VERSION,
                                         "kernels": [manifest_entry(s, t) for s, t in planned]},
                                        indent=1, sort_keys=True) + "\n"
    files["manifest.cmake"] = render("manifest.cmake.j2", kernels=[(s, [gencode(x) for x in t]) for s, t in planned])
    report: dict[str, list[str]] = {"written": [], "unchanged": [], "removed": []}
    for name, text in files.items():
        report["written" if write_if_changed(out / name, text) else "unchanged"].append(name)
    for stale in sorted(out.glob(f"{GENERATED_PREFIX}*.cu")):
        if stale.name not in files:
            stale.unlink()
            report["removed"].append(stale.name)
    return report


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def read_manifest(path: Path) -> list[dict]:
    doc = json.loads(Path(path).read_text())
    if doc.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path}: manifest version {doc.get('version')!r}, expected {MANIFEST_VERSION}")
    return doc["kernels"]
