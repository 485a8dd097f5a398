"""mixgemm's build-time code generator: kernel families -> Jinja templates -> generated sources.

Importable as ``mixgemm.generator`` (the package maps this folder) or as ``generator`` from a
source checkout (CMake runs it that way at configure time). Needs only Python and jinja2.
"""
from .dtypes import DType, ScaleMode, PER_CHANNEL, DEFAULT_GROUP_SIZE, DEFAULT_WEIGHT_DTYPE  # noqa: F401
from .family import FAMILIES, KernelSpec, ShapeRule, CostModel, register, unregister  # noqa: F401
from .catalog import catalog, default_kernels, invalid_reason, is_valid, select, smoke_kernels  # noqa: F401
from .families.sm90_mixed import Schedule, Sm90MixedSpec  # noqa: F401
from .families.decode import DecodeSpec  # noqa: F401
