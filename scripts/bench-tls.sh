#!/usr/bin/env bash
# What security costs: the same 3-node cluster and workloads, plain and then
# secured (mutual TLS between nodes, HTTPS with bearer tokens for clients,
# encrypted gossip), alternating, in one run, so the ratio is not blurred by
# a machine that is faster or slower from one minute to the next.
#
#   scripts/bench-tls.sh
#   BENCH_ROUNDS=3 BENCH_SECONDS=30 scripts/bench-tls.sh
#
# Workloads (sessionbench, 64 clients over HTTP/1.1 keep-alive connections):
#   put64   durable appends of 256-byte messages over 1000 sessions
#   read64  linearizable GET …/state of one small session
#
# Environment: BENCH_ROUNDS (2), BENCH_SECONDS (20), BENCH_WARMUP (2s),
# SESSIOND_SHARDS (16), SESSIOND_FLAGS (extra node flags). Everything
# listens on 127.0.0.1: HTTP 18281-18283, raft 17201-17203, gossip
# 17247-17249. Processes are stopped and temporary files removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${BENCH_ROUNDS:-2}
secs=${BENCH_SECONDS:-20}
warmup=${BENCH_WARMUP:-2s}
shards=${SESSIOND_SHARDS:-16}
tmp=$(mktemp -d -t sessiond-bench-tls.XXXXXX)
bin=$tmp/bin
res=$tmp/results
mkdir -p "$bin" "$res"
http=(18281 18282 18283)
raft=(17201 17202 17203)
gossip=(17247 17248 17249)
join=127.0.0.1:17247,127.0.0.1:17248,127.0.0.1:17249
pids=()

stop_nodes() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_nodes; rm -rf "$tmp"' EXIT

go build -o "$bin/sessiond" ./cmd/sessiond
go build -o "$bin/sessionbench" ./cmd/sessionbench
"$bin/sessiond" certs init --dir "$tmp/secrets" --node node1 --node node2 --node node3 >/dev/null
token=$(awk '$1=="admin"{print $2}' "$tmp/secrets/tokens")

# start MODE: three nodes, plain or secured, ready and with leaders spread.
start() {
  local mode=$1 i scheme=http
  rm -rf "$tmp/data"
  for i in 0 1 2; do
    local n=node$((i + 1)) sec=()
    if [ "$mode" = secured ]; then
      sec=(--tls-ca "$tmp/secrets/ca.pem" --tls-cert "$tmp/secrets/$n.pem" --tls-key "$tmp/secrets/$n-key.pem"
        --gossip-key-file "$tmp/secrets/gossip.key" --token-file "$tmp/secrets/tokens")
    fi
    # shellcheck disable=SC2086 # SESSIOND_FLAGS is a list of flags
    "$bin/sessiond" --node-id "$n" --data-dir "$tmp/data/$n" --http-addr "127.0.0.1:${http[i]}" \
      --raft-addr "127.0.0.1:${raft[i]}" --gossip-addr "127.0.0.1:${gossip[i]}" --join "$join" \
      --bootstrap-expect 3 --shards "$shards" --drain-timeout 5s "${sec[@]}" ${SESSIOND_FLAGS:-} \
      >"$tmp/$mode-$n.log" 2>&1 &
    pids+=($!)
  done
  [ "$mode" = secured ] && scheme=https
  curl_opts=(-fsS -m 2 --cacert "$tmp/secrets/ca.pem" -H "Authorization: Bearer $token")
  addrs="$scheme://127.0.0.1:${http[0]},$scheme://127.0.0.1:${http[1]},$scheme://127.0.0.1:${http[2]}"
  local deadline=$((SECONDS + 90))
  until [ "$(curl "${curl_opts[@]}" "$scheme://127.0.0.1:${http[0]}/v1/cluster" 2>/dev/null | python3 -c 'import json, sys
c = json.load(sys.stdin); per = c["summary"]["leadersPerNode"]
print(int(c["ready"] and len(per) == 3 and sum(per.values()) == c["shardCount"] and max(per.values()) - min(per.values()) <= 1))' 2>/dev/null)" = 1 ]; do
    if [ $SECONDS -ge $deadline ]; then echo "$mode cluster not ready and balanced after 90 s" >&2; tail -5 "$tmp/$mode-node1.log" >&2; exit 1; fi
    sleep 0.5
  done
}

bench() {
  local out=$1; shift
  SESSIOND_CA=$tmp/secrets/ca.pem SESSIOND_TOKEN=$token "$bin/sessionbench" --addrs "$addrs" --progress 0 --json \
    --duration "${secs}s" --warmup "$warmup" --concurrency 64 "$@" >"$out"
}

echo "bench-tls: $(nproc) CPUs, $rounds rounds of plain then secured, ${secs}s per workload, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  for mode in plain secured; do
    start "$mode"
    bench "$res/$r-$mode-put64.json" --mix append=100 --sessions 1000 --message-bytes 256
    bench "$res/$r-$mode-create.json" --mix put=100 --prefix tls --sessions 1 --concurrency 1 --duration 0 --requests 1 --warmup 0s
    bench "$res/$r-$mode-read64.json" --mix state=100 --prefix tls --sessions 1
    stop_nodes
    echo "round $r $mode done"
  done
done

python3 - "$res" "$rounds" <<'PY'
import json, sys
res, rounds = sys.argv[1], int(sys.argv[2])
def get(r, mode, w):
    t = json.load(open("%s/%d-%s-%s.json" % (res, r, mode, w)))["total"]
    return t["okPerSec"], t["latencyUs"]["p50"] / 1000, t["latencyUs"]["p99"] / 1000, t["errors"]
fmt = "%-8s %-6s %12s %8s %8s %14s %8s %8s %8s"
print(fmt % ("workload", "round", "plain ops/s", "p50 ms", "p99 ms", "secured ops/s", "p50 ms", "p99 ms", "ratio"))
for w in ("put64", "read64"):
    ratios = []
    for r in range(1, rounds + 1):
        p, s = get(r, "plain", w), get(r, "secured", w)
        ratios.append(s[0] / p[0])
        print(fmt % (w, r, "%.0f" % p[0], "%.2f" % p[1], "%.2f" % p[2], "%.0f" % s[0], "%.2f" % s[1], "%.2f" % s[2], "%.2f" % ratios[-1]))
        if p[3] or s[3]:
            print("  errors: plain %d, secured %d" % (p[3], s[3]))
    print("%s: secured/plain throughput %.2f on average (%s)" % (w, sum(ratios) / len(ratios), ", ".join("%.2f" % x for x in ratios)))
PY
