#!/usr/bin/env bash
# Sets up this machine (Debian 12), builds the project and runs its main job.
# Until sfsd exists, the main job is the scheduler benchmark (the paper's
# Table 1 against Boost.Asio strands); its table is printed and its JSON lines
# are written to build/sched_bench.json. Usage: bash scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
exec build/bench/sched_bench --json build/sched_bench.json "$@"
