"""A toy second kernel family, defined entirely here: its own fields, grammar, predicate, template,
rule and estimate. tests/unit/test_families.py registers it and checks that the catalogue,
`mixgemm list`, generation, the manifest and dispatch pick it up with no change elsewhere."""
from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

from mixgemm.generator.dtypes import DType, ScaleMode
from mixgemm.generator.family import KernelSpec, ShapeRule, TYPES_PATTERN
from mixgemm.generator.layouts import W4_MMA16


@dataclasses.dataclass(frozen=True)
class ToySpec(KernelSpec):
    lanes: int

    token = "toy"
    title = "toy family for tests"
    template = "toy.cu.j2"
    template_dir = Path(__file__).resolve().parent
    layout = W4_MMA16
    _BODY = re.compile(TYPES_PATTERN + r"_l(?P<lanes>\d+)")

    def body(self):
        return f"{self.types()}_l{self.lanes}"

    @classmethod
    def from_body(cls, m):
        return cls(**cls.type_fields(m), lanes=int(m["lanes"]))

    @classmethod
    def product(cls):
        for act, lanes in itertools.product((DType.BF16, DType.F16), (1, 2, 3, 4)):
            yield cls(act, DType.S4, ScaleMode.GROUP, False, act, lanes=lanes)

    def invalid_reason(self):
        return None if self.lanes in (1, 2, 4) else f"lanes={self.lanes} is not a power of two"

    def in_default_set(self):
        return self.lanes == 4

    def is_smoke(self):
        return False

    def cuda_archs(self):
        return ("86",)

    def shape_rule(self):
        return ShapeRule(32, 32, 32)

    def estimate_us(self, m, n, k, group_size, sms, model=None):
        return 0.5  # always looks fastest, so dispatch would pick it

    def config(self):
        return f"{self.lanes} lanes"
