"""The ``mixgemm`` command: build-time verbs from the generator plus runtime ones.

    mixgemm generate [--arch 90a] [--kernels FILTER] [--out DIR]
    mixgemm list [--all] [--kernels FILTER]        (marks what this installation has built)
    mixgemm bench [--shapes ...] [--m ...] [--markdown FILE]
    mixgemm tune [--shapes ...] [--m ...] [--out profiles/<gpu>.json]
    mixgemm cmake-dir                               (for C++: find_package(mixgemm), mixgemm::mixgemm)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import _lib
from .generator import cli as gen_cli


def cmd_list(args: argparse.Namespace) -> int:
    built = {name for name, _ in _lib.built_kernels()}
    if not _lib.available():
        print("note: the kernel library is not built in this installation", file=sys.stderr)
    return gen_cli.cmd_list(args, built=built)


def cmd_cmake_dir(args: argparse.Namespace) -> int:
    print(Path(__file__).resolve().parent / "share" / "cmake" / "mixgemm")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench  # noqa: PLC0415  (imports triton lazily)
    return bench.main(args)


def cmd_tune(args: argparse.Namespace) -> int:
    from . import tune  # noqa: PLC0415
    return tune.main(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mixgemm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen_cli.add_build_time_commands(sub)
    sub.choices["list"].set_defaults(func=cmd_list)
    c = sub.add_parser("cmake-dir", help="print the folder of mixgemmConfig.cmake (for -Dmixgemm_DIR=)")
    c.set_defaults(func=cmd_cmake_dir)
    b = sub.add_parser("bench", help="time mixgemm against cuBLAS and peers, as %% of the roofline")
    from .bench import add_arguments  # noqa: PLC0415
    add_arguments(b)
    b.set_defaults(func=cmd_bench)
    t = sub.add_parser("tune", help="time every built kernel per shape and M bucket; write a dispatch profile")
    from .tune import add_arguments as tune_arguments  # noqa: PLC0415
    tune_arguments(t)
    t.set_defaults(func=cmd_tune)
    return gen_cli.run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
