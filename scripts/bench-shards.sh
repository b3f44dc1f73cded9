#!/usr/bin/env bash
# Appends per second on ONE node as the shard count grows, for each raft log
# store: does adding shards make writes slower?
#
#   scripts/bench-shards.sh                       # shards 1 16 64, both log stores
#   SHARDS="1 16" STORES=shared BENCH_SECONDS=10 scripts/bench-shards.sh
#
# For every (log store, shard count) it starts a fresh node on 127.0.0.1
# (HTTP 18180, raft 18181, gossip 18182) with a data directory in a
# temporary directory, runs sessionbench (64 clients, 256-byte appends over
# 1000 sessions) and stops the node by its PID. Prints one row per run.
set -euo pipefail
if [ -z "${BENCH_SHARDS_DEADLINE:-}" ]; then
  export BENCH_SHARDS_DEADLINE=1
  exec timeout -k 20 "${BENCH_MAX_SECONDS:-900}" bash "$0" "$@"
fi
cd "$(dirname "$0")/.."

shard_counts=${SHARDS:-1 16 64}
stores=${STORES:-shared per-shard}
secs=${BENCH_SECONDS:-15}
clients=${CLIENTS:-64}
tmp=$(mktemp -d -t sessiond-bench-shards.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/sessiond" ./cmd/sessiond
go build -o "$tmp/sessionbench" ./cmd/sessionbench

printf '%-10s %6s %10s %8s %8s %8s %7s\n' store shards appends/s p50_ms p99_ms p999_ms errors
for store in $stores; do
  for n in $shard_counts; do
    dir=$tmp/data-$store-$n
    "$tmp/sessiond" --node-id bench --data-dir "$dir" --shards "$n" --log-store "$store" \
      --http-addr 127.0.0.1:18180 --raft-addr 127.0.0.1:18181 --gossip-addr 127.0.0.1:18182 \
      >"$tmp/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
      curl -fsS -m 1 http://127.0.0.1:18180/readyz >/dev/null 2>&1 && break
      kill -0 "$pid" 2>/dev/null || { tail -20 "$tmp/node.log"; exit 1; }
      sleep 0.1
    done
    "$tmp/sessionbench" --addrs 127.0.0.1:18180 --duration "${secs}s" --warmup 2s \
      --concurrency "$clients" --sessions 1000 --mix append=100 --message-bytes 256 \
      --progress 0 --json >"$tmp/out.json"
    python3 - "$store" "$n" "$tmp/out.json" <<'PY'
import json, sys
store, n, path = sys.argv[1:]
r = json.load(open(path))
a = r["operations"]["append"]
l = a["latencyUs"]
print("%-10s %6s %10.0f %8.2f %8.2f %8.2f %7d" % (store, n, a["okPerSec"], l["p50"] / 1e3, l["p99"] / 1e3, l["p99.9"] / 1e3, a["errors"]))
PY
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    rm -rf "$dir"
  done
done
