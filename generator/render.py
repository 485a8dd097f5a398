"""Jinja rendering: one Environment per template folder (StrictUndefined, registered helpers)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import jinja2

from .family import TEMPLATE_DIR, KernelSpec


@functools.cache
def environment(folder: Path = TEMPLATE_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["cpp_bool"] = lambda v: "true" if v else "false"
    return env


def render_kernel(spec: KernelSpec, targets: Optional[tuple[str, ...]] = None) -> str:
    """The kernel's source; it registers the kernel for the capabilities its targets run on."""
    targets = spec.cuda_archs() if targets is None else targets
    return environment(spec.template_dir).get_template(spec.template).render(
        spec=spec, capabilities=spec.capabilities(targets))


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
