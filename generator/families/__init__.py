"""The built-in kernel families; importing this package registers them."""
from . import decode, sm80, sm80_group, sm90_fp8, sm90_mixed, sm90_w4a8  # noqa: F401
