#!/usr/bin/env bash
# The callback benchmark as docs/BENCHMARKS.md records it: a release build serving on
# Postgres and Redis (a fresh database `wxbench`), then `wxpilot bench callback` at each rate
# given, 10 s of safe-mode FAQ messages per rate, one JSON line of figures per rate.
#   scripts/bench-callback.sh 500 1000 1000
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wxpilot/target}"
cargo build --release --locked --quiet
B="$CARGO_TARGET_DIR/release/wxpilot"
PORT="${BENCH_PORT:-18090}"
psql -h 127.0.0.1 -U postgres -qc "drop database if exists wxbench" >/dev/null
psql -h 127.0.0.1 -U postgres -qc "create database wxbench" >/dev/null
DIR="$(mktemp -d)"
export DATABASE_URL=postgres://postgres@127.0.0.1/wxbench REDIS_URL=redis://127.0.0.1:6379
export WXPILOT_DATA_DIR="$DIR" WXPILOT_LISTEN="127.0.0.1:$PORT" WXPILOT_LOG__FILTER=error
WXPILOT_MASTER_KEY="$("$B" secrets generate-key | tail -1)"
export WXPILOT_MASTER_KEY
export WXPILOT_JOBS__QUEUE_PREFIX="wxbench$RANDOM"
"$B" migrate >/dev/null
KEY="$("$B" tenant create --name Bench --json | python3 -c "import json,sys;print(json.load(sys.stdin)['api_key']['secret'])")"
"$B" serve >"$DIR/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
for rate in "$@"; do
  "$B" bench callback --url "http://127.0.0.1:$PORT" --key "$KEY" \
    --messages $((rate * 10)) --rate "$rate" --accounts 8 --json
done
