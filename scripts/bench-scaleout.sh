#!/usr/bin/env bash
# Measure scale-out: load a fresh 3-node local cluster (scripts/cluster.sh)
# with about DATA_MB of sessions, measure a mixed workload, then start node4
# while the same workload runs and time until every shard has converged onto
# its new placement. Prints both sessionbench reports and the convergence time.
#
#   scripts/bench-scaleout.sh            # DATA_MB=500 BENCH_SECONDS=60 by default
#   DATA_MB=100 BENCH_SECONDS=30 scripts/bench-scaleout.sh
#
# It deletes data/cluster first and leaves the 4-node cluster running
# (scripts/cluster.sh clean to remove it).
set -euo pipefail
cd "$(dirname "$0")/.."

data_mb=${DATA_MB:-500}
secs=${BENCH_SECONDS:-60}
msg_bytes=16384
addrs=127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083
out=${OUT_DIR:-data/bench-scaleout}
mkdir -p "$out"

scripts/cluster.sh clean >/dev/null 2>&1 || true
scripts/cluster.sh up
go build -o data/cluster/sessionbench ./cmd/sessionbench
go build -o data/cluster/sessionctl ./cmd/sessionctl
bench=data/cluster/sessionbench
ctl=data/cluster/sessionctl

requests=$((data_mb * 1024 * 1024 / msg_bytes))
echo "loading ~${data_mb} MB: $requests appends of $msg_bytes bytes over 2000 sessions"
"$bench" --addrs "$addrs" --sessions 2000 --concurrency 64 --duration 0 --requests "$requests" \
  --mix append=100 --message-bytes "$msg_bytes" --progress 10s --json >"$out/load.json"

echo "baseline: ${secs}s of append=70,get=20,put=10 with 3 nodes"
"$bench" --addrs "$addrs" --sessions 10000 --concurrency 64 --duration "${secs}s" \
  --mix append=70,get=20,put=10 --message-bytes 256 --progress 0 --json >"$out/before.json"

echo "starting node4 with the same workload running"
"$bench" --addrs "$addrs" --sessions 10000 --concurrency 64 --duration "${secs}s" \
  --mix append=70,get=20,put=10 --message-bytes 256 --progress 0 --json >"$out/during.json" &
bench_pid=$!
start=$(date +%s.%N)
scripts/cluster.sh start 4
while :; do
  summary=$("$ctl" --addr 127.0.0.1:8081 status -o json 2>/dev/null | tr -d ' \n' || true)
  # Done when node4 holds replicas and every shard matches its placement.
  if echo "$summary" | grep -Eq '"id":"node4"[^}]*"replicas":[1-9]' &&
    echo "$summary" | grep -Eq '"shardsConverged":16[,}]'; then break; fi
  sleep 0.5
done
end=$(date +%s.%N)
echo "converged after $(echo "$end - $start" | bc) s"
wait "$bench_pid"
for f in before during; do
  python3 - "$out/$f.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
a = r["operations"]["append"]
print("%-7s ops/s %7.1f  append ops/s %7.1f  append p50 %6.1f ms  p99 %7.1f ms  errors %d" % (
    sys.argv[1].rsplit("/", 1)[-1][:-5], r["total"]["opsPerSec"], a["opsPerSec"],
    a["latencyUs"]["p50"] / 1000, a["latencyUs"]["p99"] / 1000, r["total"]["errors"]))
PY
done
du -sh data/cluster/node*/data | sed 's/^/disk: /'
