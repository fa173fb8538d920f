#!/usr/bin/env bash
# Runs the shared fan-out bench (../shared/bench) against examples/bench_server.
#
#   benches/shared-bench.sh --scenario paced             # one scenario
#   benches/shared-bench.sh --all --repeat 3 --jsonl out.jsonl   # every scenario, with the peers
#
# Arguments go to run.py as they are. BENCH_SERVER_ARGS adds options to the
# server (e.g. BENCH_SERVER_ARGS="--max-clients 9990").
#
# Every stream costs one thread (its writer: tiny_http's reading thread is let
# go once the stream starts, on Linux 5.6+), and every thread four memory
# mappings, so 10,000 clients need ~45,000 mappings, within Linux's default
# vm.max_map_count (65530). Where the release is refused (seccomp, older
# kernels) a stream keeps two threads and 10,000 clients need ~80,000: with
# RAISE_MAP_COUNT=1, run as root, this script raises the limit to 262144 for
# the run and puts the old value back when it ends.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${SHARED_BENCH:-$here/../shared/bench}
if [ ! -f "$bench/run.py" ]; then
  echo "shared-bench.sh: the shared fan-out bench is not at $bench." >&2
  echo "It is not part of this repository (see the README's Performance section);" >&2
  echo "set SHARED_BENCH to where it is. The crate's own benches need nothing" >&2
  echo "else: cargo bench --bench fanout (or idle_watch, or --features redis --bench redis)." >&2
  exit 2
fi
cargo build --release --quiet --example bench_server --manifest-path "$here/Cargo.toml"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
server="$target_dir/release/examples/bench_server"

old_maps=$(cat /proc/sys/vm/max_map_count)
if [ "${RAISE_MAP_COUNT:-0}" = 1 ] && [ "$old_maps" -lt 262144 ] && [ "$(id -u)" = 0 ]; then
  if sysctl -q -w vm.max_map_count=262144 2>/dev/null; then
    trap 'sysctl -q -w vm.max_map_count='"$old_maps" EXIT
    echo "vm.max_map_count raised from $old_maps to 262144 for this run" >&2
  fi
fi
cd "$bench"
python3 run.py --cmd "$server ${BENCH_SERVER_ARGS:-}" --name sse-server "$@"
