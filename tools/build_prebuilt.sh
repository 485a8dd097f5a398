#!/usr/bin/env bash
# Build libmixgemm (default kernel set, sm90a) on this machine and copy it to .prebuilt/ for the
# device tool to carry. nvcc works without a GPU; about 85 s and 4 GB per kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/lib -G Ninja -DMIXGEMM_PYTHON=OFF -DMIXGEMM_ARCHS=90a -DMIXGEMM_KERNELS="${MIXGEMM_KERNELS:-default}" \
  -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/lib -j "${JOBS:-2}"
mkdir -p .prebuilt && cp build/lib/libmixgemm.so .prebuilt/
ls -la .prebuilt/
