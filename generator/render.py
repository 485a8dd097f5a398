"""Jinja rendering: one Environment (StrictUndefined, registered helpers) for every template."""
from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from .spec import KernelSpec


def template_dir() -> Path:
    """templates/ beside this package: the source tree's top level, or mixgemm/templates when
    installed (CMake installs both next to each other)."""
    return Path(__file__).resolve().parent.parent / "templates"


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["cpp_bool"] = lambda v: "true" if v else "false"
    return env


def kernel_template(spec: KernelSpec) -> str:
    return {90: "sm90_mixed.cu.j2"}[spec.arch]


def render_kernel(spec: KernelSpec) -> str:
    return environment().get_template(kernel_template(spec)).render(spec=spec)


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
