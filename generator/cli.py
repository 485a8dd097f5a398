"""Build-time CLI: ``generate`` and ``list`` (the ``mixgemm`` command adds runtime verbs).

Run from a source tree as ``python -m generator.cli`` (CMake does), or installed as ``mixgemm``.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from .catalog import catalog, known_targets, select
from .family import FAMILIES
from .manifest import generate

_TARGET = re.compile(r"(?:sm_?|compute_)?(\d+a?)")


def parse_archs(text: Optional[str]) -> Optional[list[str]]:
    """'90a;80', 'sm_90a,sm80' or '90' -> nvcc targets ['90a', '80'] / ['90']; None or '' -> None (all)."""
    if not text:
        return None
    archs = []
    for token in text.replace(";", ",").split(","):
        token = token.strip().lower()
        if not token:
            continue
        m = _TARGET.fullmatch(token)
        if m is None:
            raise ValueError(f"--arch: {token!r} in {text!r} is not an arch such as '90a', 'sm_90a' or '80'")
        archs.append(m[1])
    return archs


def selected(kernels: Optional[str], arch: Optional[str]) -> list:
    """The kernels a filter and an --arch select; an arch no family compiles for is an error."""
    archs = parse_archs(arch)
    specs = select(kernels, archs)
    if archs is not None and not specs and kernels != "none":
        raise ValueError(f"--arch {arch}: no kernel in this selection has code for it; the families compile for "
                         f"{', '.join(known_targets())} ({', '.join(sorted(FAMILIES))})")
    return specs


def cmd_generate(args: argparse.Namespace) -> int:
    specs = selected(args.kernels, args.arch)
    report = generate(specs, Path(args.out), parse_archs(args.arch))
    if not args.quiet:
        print(f"{len(specs)} kernels -> {args.out}: {len(report['written'])} written, "
              f"{len(report['unchanged'])} unchanged, {len(report['removed'])} removed")
    return 0


def format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def list_rows(specs, built: Optional[set[str]]) -> list[list[str]]:
    rows = []
    for s in specs:
        row = [s.name(), s.token, ",".join(map(str, s.capabilities())), s.describe_types(), s.config(),
               "yes" if s.in_default_set() else ""]
        if built is not None:
            row.append("yes" if s.name() in built else "")
        rows.append(row)
    return rows


def cmd_list(args: argparse.Namespace, built: Optional[set[str]] = None) -> int:
    specs = selected("all" if args.all else args.kernels, args.arch)
    header = ["name", "family", "runs on", "types", "config", "default"]
    if built is not None:
        header.append("built")
    print(format_table(list_rows(specs, built), header))
    print(f"\n{len(specs)} kernels" + (f", {sum(s.name() in built for s in specs)} built" if built is not None else ""))
    print("families: " + "; ".join(f"{t} = {FAMILIES[t].title}" for t in sorted(FAMILIES)))
    return 0


def add_build_time_commands(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="write kernel sources, manifest.json and manifest.cmake")
    g.add_argument("--arch", default=None, help="nvcc targets to generate for, e.g. '90a' or '80;90a' (default: all)")
    g.add_argument("--kernels", default=None,
                   help="filter: 'default', 'smoke', 'all', or comma-separated tokens; a token's '+'-joined "
                        "parts must all occur in a kernel's name (e.g. 'bf16xs4+t128x16')")
    g.add_argument("--out", default="kernels_generated", help="output folder (default: kernels_generated)")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_generate)
    ls = sub.add_parser("list", help="print the catalogue (name, family, capabilities, types) and what is built")
    ls.add_argument("--all", action="store_true", help="the whole catalogue, not just the default set")
    ls.add_argument("--arch", default=None, help="only kernels with code for these targets, e.g. '80' or '90a'")
    ls.add_argument("--kernels", default=None, help="same filter syntax as generate")
    ls.set_defaults(func=cmd_list)


def run(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> int:
    """Parse and run a subcommand; a ValueError is the user's mistake: print it, exit status 2.
    A closed pipe (`mixgemm list --all | head`) ends the command quietly."""
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # NOTE(pipe): point stdout at devnull so the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mixgemm-generator", description=__doc__)
    add_build_time_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
