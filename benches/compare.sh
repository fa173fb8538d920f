#!/usr/bin/env bash
# Builds and runs the in-repository peer comparison (benches/compare/README.md):
# the main crate's bench_server and the benches/compare workspace (loadgen,
# driver, peers), in release, then the driver with the arguments given here.
#
#   benches/compare.sh --targets sse-server,raw-floor --scenarios paced --repeat 1
#   benches/compare.sh --targets raw-floor,axum-broadcast,thread-naive,sse-server \
#       --scenarios paced,idle10k,large,max --repeat 3 --jsonl benches/results/DATE-compare.jsonl
#
# CARGO_TARGET_DIR, if set, is used for both builds (else each its default).
# Options for bench_server go through the driver: --server-args '--client-buffer 256'.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
compare="$root/benches/compare"

if ! command -v taskset >/dev/null 2>&1; then
  echo "compare.sh: needs taskset (util-linux) to pin the server and the loadgen" >&2
  echo "to one core each; install it (e.g. apt-get install util-linux)." >&2
  exit 2
fi

# The target directory cargo uses for a manifest (honours CARGO_TARGET_DIR).
target_dir() {
  cargo metadata --format-version 1 --no-deps --manifest-path "$1" \
    | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4
}

cargo build --release --quiet --example bench_server --manifest-path "$root/Cargo.toml"
cargo build --release --quiet --manifest-path "$compare/Cargo.toml"
server_dir=$(target_dir "$root/Cargo.toml")/release
compare_dir=$(target_dir "$compare/Cargo.toml")/release

# 10,000 clients need ~10,100 descriptors in each process (the driver raises
# the soft limit too; this covers a hard limit the shell may raise).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec "$compare_dir/compare" --server-bin "$server_dir/examples/bench_server" \
  --loadgen "$compare_dir/sse-loadgen" --peers-dir "$compare_dir" "$@"
