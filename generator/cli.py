"""Build-time CLI: ``generate`` and ``list`` (the ``mixgemm`` command adds runtime verbs).

Run from a source tree as ``python -m generator.cli`` (CMake does), or installed as ``mixgemm``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .catalog import catalog, default_kernels, select
from .manifest import cuda_arch, generate


def parse_archs(text: Optional[str]) -> Optional[list[int]]:
    """'90a;80' or '90,80' -> [90, 80]; None or '' -> None (every arch)."""
    if not text:
        return None
    archs = []
    for token in text.replace(";", ",").split(","):
        token = token.strip().lower().removeprefix("sm").removeprefix("sm_").rstrip("a")
        if token:
            if not token.isdigit():
                raise ValueError(f"--arch: {text!r} is not a list of archs such as '90a' or '80;90a'")
            archs.append(int(token))
    return archs


def cmd_generate(args: argparse.Namespace) -> int:
    specs = select(args.kernels, parse_archs(args.arch))
    report = generate(specs, Path(args.out))
    if not args.quiet:
        print(f"{len(specs)} kernels -> {args.out}: {len(report['written'])} written, "
              f"{len(report['unchanged'])} unchanged, {len(report['removed'])} removed")
    return 0


def format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def list_rows(specs, built: Optional[set[str]]) -> list[list[str]]:
    defaults = {s.name() for s in default_kernels()}
    rows = []
    for s in specs:
        row = [s.name(), f"sm{cuda_arch(s.arch)}", f"{s.act.short} x {s.weight.short}{'+z' if s.zero else ''}",
               "x".join(map(str, s.tile)), "x".join(map(str, s.cluster)), s.schedule.short,
               "yes" if s.name() in defaults else ""]
        if built is not None:
            row.append("yes" if s.name() in built else "")
        rows.append(row)
    return rows


def cmd_list(args: argparse.Namespace, built: Optional[set[str]] = None) -> int:
    specs = catalog() if args.all else select(args.kernels, parse_archs(args.arch))
    header = ["name", "arch", "types", "tile (n x m x k)", "cluster", "sched", "default"]
    if built is not None:
        header.append("built")
    print(format_table(list_rows(specs, built), header))
    print(f"\n{len(specs)} kernels" + (f", {sum(s.name() in built for s in specs)} built" if built is not None else ""))
    return 0


def add_build_time_commands(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="write kernel sources, manifest.json and manifest.cmake")
    g.add_argument("--arch", default=None, help="archs to generate, e.g. '90a' or '80;90a' (default: all)")
    g.add_argument("--kernels", default=None,
                   help="filter: 'default', 'all', or comma-separated tokens; a token's '+'-joined parts "
                        "must all occur in a kernel's name (e.g. 'bf16xs4+t128x16')")
    g.add_argument("--out", default="kernels_generated", help="output folder (default: kernels_generated)")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_generate)
    ls = sub.add_parser("list", help="print the catalogue (name, arch, types, tile) and what is built")
    ls.add_argument("--all", action="store_true", help="the whole catalogue, not just the default set")
    ls.add_argument("--arch", default=None)
    ls.add_argument("--kernels", default=None, help="same filter syntax as generate")
    ls.set_defaults(func=cmd_list)


def run(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> int:
    """Parse and run a subcommand; a ValueError is the user's mistake: print it, exit status 2."""
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mixgemm-generator", description=__doc__)
    add_build_time_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
