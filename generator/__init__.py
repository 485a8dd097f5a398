"""mixgemm's build-time code generator: KernelSpec -> Jinja templates -> kernels_generated/.

Importable as ``mixgemm.generator`` once installed (the package ships a copy), or as
``generator`` from a source checkout (CMake runs it that way at configure time).
"""
from .spec import DType, KernelSpec, Schedule, ScaleMode  # noqa: F401
from .catalog import catalog, default_kernels, invalid_reason, is_valid  # noqa: F401
