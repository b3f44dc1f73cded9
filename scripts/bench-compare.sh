#!/usr/bin/env bash
# Run the same workloads against a 3-member etcd and a 3-node sessiond on this
# machine, one after the other, and print them side by side:
#
#   durable writes    64 clients, 256-byte values: etcd `benchmark put` vs
#                     sessionbench --mix append=100, sent round-robin to
#                     every node and again straight to the shard leaders
#                     (--route leader, as the Go client's RouteToLeader)
#   serial writes     one client, one request at a time, same sizes, both ways
#   linearizable      64 clients, then one, reading one small record: etcd
#   reads             `benchmark range` of one key (--consistency=l) vs
#                     sessionbench --mix state=100 on one session holding a
#                     few fields
#
# After the table, the CPU each request cost the three servers and, apart,
# the load generator: the two share this machine's cores, so throughput
# alone mixes the servers' cost with the tools'.
#
#   scripts/bench-compare.sh
#   BENCH_SECONDS=60 SESSIOND_FLAGS="--raft-heartbeat 300ms" scripts/bench-compare.sh
#   BENCH_ROUNDS=5 scripts/bench-compare.sh
#
# With BENCH_ROUNDS=N, N alternating rounds of the 64-client writes follow
# the table, with both clusters running (the one not measured idles): in
# each round sessiond round-robin, sessiond sent to leaders, then etcd with
# as many requests. Consecutive rounds a minute apart see the same machine,
# where two runs minutes apart can differ by a third on a shared host; the
# median of the per-round ratios is the figure to quote.
#
# Environment:
#   BENCH_SECONDS       measured seconds of each sessiond workload (20)
#   BENCH_WARMUP        sessionbench warmup before each workload (2s)
#   BENCH_ROUNDS        alternating rounds of 64-client writes after the table (0)
#   BENCH_ROUND_SECONDS measured seconds of each sessiond workload in a round (10)
#   ETCD_REQUESTS       requests of each etcd workload (default: as many as
#                       sessiond completed in the same workload, at least 1000)
#   ETCD_CONNS          gRPC connections of the 64-client etcd runs (16)
#   ETCD_BENCH_VERSION  etcd module version the benchmark tool is built from (v3.6.8)
#   SESSIOND_SHARDS     shards of the sessiond cluster (16)
#   SESSIOND_FLAGS      extra flags for every sessiond node
#   BENCH_MAX_SECONDS   deadline of the whole script (1200)
#   BENCH_CACHE_DIR     where the built etcd benchmark tool is kept
#                       (~/.cache/sessiond-bench)
#   OUT_DIR             if set, raw outputs and logs are copied there
#
# Everything listens on 127.0.0.1: sessiond on HTTP 18081-18083, raft
# 17001-17003, gossip 17947-17949; etcd on 12379/12380, 13379/13380,
# 14379/14380. Only one of the two clusters runs at a time. etcd comes from
# the Debian package etcd-server (installed with apt-get when missing); the
# etcd `benchmark` tool is built once from the etcd Go module. Every process
# the script starts is stopped by its PID on exit, error or deadline, and its
# data directories, in one temporary directory, are removed.
set -euo pipefail

if [ -z "${BENCH_COMPARE_DEADLINE:-}" ]; then
  export BENCH_COMPARE_DEADLINE=1
  exec timeout -k 30 "${BENCH_MAX_SECONDS:-1200}" bash "$0" "$@"
fi
cd "$(dirname "$0")/.."

secs=${BENCH_SECONDS:-20}
rounds=${BENCH_ROUNDS:-0}
round_secs=${BENCH_ROUND_SECONDS:-10}
warmup=${BENCH_WARMUP:-2s}
etcd_requests=${ETCD_REQUESTS:-}
etcd_conns=${ETCD_CONNS:-16}
etcd_version=${ETCD_BENCH_VERSION:-v3.6.8}
shards=${SESSIOND_SHARDS:-16}
cache=${BENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sessiond-bench}
clients=64
value_bytes=256
sessions=1000

tmp=$(mktemp -d -t sessiond-bench-compare.XXXXXX)
bin=$tmp/bin
res=$tmp/results
logs=$tmp/logs
mkdir -p "$bin" "$res" "$logs"

say() { printf '%s\n' "$*"; }
hdr() { printf '\n== %s\n' "$*"; }

# ------------------------------------------------------------ processes
pids=()  # servers started by this script
cur=""   # the measuring step running now

alive() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]; }

# stop_pid PID: TERM, then KILL after 15 s.
stop_pid() {
  local pid=$1 i
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true
}

# stop_servers: TERM every server started, KILL those still there after 15 s.
stop_servers() {
  local pid i
  for pid in "${pids[@]}"; do if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi; done
  for i in $(seq 150); do
    for pid in "${pids[@]}"; do if alive "$pid"; then continue 2; fi; done
    break
  done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  pids=()
}

cleanup() {
  local rc=$?
  trap '' TERM INT
  if [ -n "$cur" ]; then stop_pid "$cur"; fi
  stop_servers
  if [ "$rc" -ne 0 ]; then
    say "bench-compare: failed (exit $rc); last log lines:" >&2
    tail -n 5 "$logs"/*.log >&2 2>/dev/null || true
  fi
  if [ -n "${OUT_DIR:-}" ]; then
    mkdir -p "$OUT_DIR" && cp -r "$res" "$logs" "$OUT_DIR"/ && say "raw outputs and logs in $OUT_DIR"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say "bench-compare: interrupted or past BENCH_MAX_SECONDS" >&2; exit 143' TERM INT

# start NAME CMD...: start a server in the background, log in $logs/NAME.log.
start() {
  local name=$1; shift
  "$@" >"$logs/$name.log" 2>&1 &
  pids+=("$!")
  say "started $name (pid $!)"
}

# step SECS OUT ERR CMD...: run one step under `timeout`, appending its
# stdout to OUT and its stderr to ERR ("-": this script's own), in the
# background so that a signal to this script is handled at once and the step
# stopped by PID. (Redirecting the call instead would also redirect what the
# signal trap prints.)
step() {
  local secs=$1 out=$2 err=$3 rc=0; shift 3
  [ "$out" != - ] || out=/dev/stdout
  [ "$err" != - ] || err=/dev/stderr
  timeout "$secs" "$@" >>"$out" 2>>"$err" &
  cur=$!
  wait "$cur" || rc=$?
  cur=""
  return "$rc"
}

# wait_for SECS CMD...: retry CMD every 0.2 s until it succeeds.
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# CPU a workload costs, so that the servers can be compared apart from their
# load generators, which share the machine: cpu_start PID... notes the
# servers' CPU time (from /proc) and that of this script's finished children
# (bash's times); cpu_end FILE PID... writes both differences in seconds,
# servers first. The load generator is the only child that ends in between.
server_cpu() {
  local p t=0
  for p in "$@"; do
    if [ -r "/proc/$p/stat" ]; then t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); fi
  done
  echo "$t"
}
# bash's times, second line: CPU of the finished children. Written to a file
# by the script's own shell, since a subshell has no children of its own.
cpu_start() { cpu0_servers=$(server_cpu "$@"); times >"$tmp/times0"; }
cpu_end() {
  local out=$1 servers; shift
  servers=$(( $(server_cpu "$@") - cpu0_servers ))
  times >"$tmp/times1"
  awk -v servers="$servers" -v tck="$(getconf CLK_TCK)" '
    FNR == 2 { gsub(/[ms]/, " "); t[FILENAME] = $1 * 60 + $2 + $3 * 60 + $4 }
    END { printf "%.3f %.3f\n", servers / tck, t[ARGV[2]] - t[ARGV[1]] }' "$tmp/times0" "$tmp/times1" >"$out"
}

ports_free() {
  local p
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      say "port $p is in use; stop what listens there first" >&2
      exit 2
    fi
  done
}

# ------------------------------------------------------------ tools
ensure_etcd() {
  command -v etcd >/dev/null && return
  say "installing etcd-server"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  step 300 - - $sudo apt-get update -qq
  step 300 "$logs/apt.log" "$logs/apt.log" $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends etcd-server || { tail -5 "$logs/apt.log"; exit 1; }
  command -v etcd >/dev/null || { say "etcd-server installed no etcd command" >&2; exit 1; }
}

# The etcd benchmark tool lives in the go.etcd.io/etcd/v3 module, whose
# go.mod replaces its sibling modules (api, client, server, …) with relative
# paths that the module download does not contain, so `go install` refuses
# it. Build it from a copy of the module with those replaces dropped: the
# siblings then come at the same version from the module proxy.
etcd_bench=$cache/etcd-benchmark-$etcd_version
build_etcd_benchmark() {
  [ -x "$etcd_bench" ] && return
  say "building etcd's benchmark tool from go.etcd.io/etcd/v3@$etcd_version (once; kept in $cache)"
  local dir src=$tmp/etcd-src old
  dir=$(timeout 300 go mod download -json "go.etcd.io/etcd/v3@$etcd_version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  for old in $(go -C "$src" mod edit -json | python3 -c 'import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("."):
        print(r["Old"]["Path"])'); do
    go -C "$src" mod edit -dropreplace="$old"
  done
  mkdir -p "$cache"
  step 600 - "$logs/etcd-benchmark-build.log" env GOTOOLCHAIN=local GOFLAGS="-modcacherw -mod=mod" \
    go -C "$src" build -o "$etcd_bench.tmp" ./tools/benchmark || { tail -20 "$logs/etcd-benchmark-build.log"; exit 1; }
  mv "$etcd_bench.tmp" "$etcd_bench"
}

# ------------------------------------------------------------ sessiond
s_http=(18081 18082 18083)
s_raft=(17001 17002 17003)
s_gossip=(17947 17948 17949)
s_addrs=127.0.0.1:18081,127.0.0.1:18082,127.0.0.1:18083
s_join=127.0.0.1:17947,127.0.0.1:17948,127.0.0.1:17949

start_sessiond() {
  local i
  ports_free "${s_http[@]}" "${s_raft[@]}" "${s_gossip[@]}"
  s_pids=()
  for i in 0 1 2; do
    # shellcheck disable=SC2086 # SESSIOND_FLAGS is a list of flags
    start "sessiond-node$((i + 1))" "$bin/sessiond" --node-id "node$((i + 1))" --data-dir "$tmp/sessiond/node$((i + 1))" \
      --http-addr "127.0.0.1:${s_http[i]}" --raft-addr "127.0.0.1:${s_raft[i]}" \
      --gossip-addr "127.0.0.1:${s_gossip[i]}" --join "$s_join" --bootstrap-expect 3 \
      --shards "$shards" --drain-timeout 5s ${SESSIOND_FLAGS:-}
    s_pids+=("${pids[-1]}")
  done
  for i in 0 1 2; do
    wait_for 90 curl -fsS -m 2 "http://127.0.0.1:${s_http[i]}/readyz" ||
      { say "sessiond node$((i + 1)) not ready after 90 s" >&2; exit 1; }
  done
  # Leadership is spread over the nodes after bootstrap; measure after that,
  # once the counts are within one of each other, where the nodes stop
  # moving leaders (a move during a run fails the requests in flight on it
  # with 503 no_leader, which sessionbench does not retry).
  wait_for 60 balanced || say "warning: shard leaders not spread evenly after 60 s; measuring anyway"
  say "sessiond ready: $(curl -fsS -m 2 "http://127.0.0.1:${s_http[0]}/v1/cluster" |
    python3 -c 'import json, sys; print("leaders per node", json.load(sys.stdin)["summary"]["leadersPerNode"])')"
}

balanced() {
  curl -fsS -m 2 "http://127.0.0.1:${s_http[0]}/v1/cluster" | python3 -c 'import json, sys
c = json.load(sys.stdin); per = c["summary"]["leadersPerNode"]
counts = [per.get("node%d" % i, 0) for i in (1, 2, 3)]  # a node leading nothing is not listed
ok = sum(per.values()) == c["shardCount"] and max(counts) - min(counts) <= 1
sys.exit(0 if ok else 1)'
}

# sessionbench NAME ARGS...: one measured sessiond workload, JSON in $res/sessiond-NAME.json.
sessionbench() {
  local name=$1; shift
  say "sessionbench --addrs $s_addrs $*"
  cpu_start "${s_pids[@]}"
  step $((secs + 90)) "$res/sessiond-$name.json" "$logs/sessionbench-$name.log" \
    "$bin/sessionbench" --addrs "$s_addrs" --progress 0 --json "$@" ||
    say "warning: sessionbench $name failed; see the table"
  cpu_end "$res/cpu-sessiond-$name" "${s_pids[@]}"
}

run_sessiond() {
  hdr "sessiond: 3 nodes, $shards shards, flags: ${SESSIOND_FLAGS:-(none)}"
  start_sessiond
  local len=(--duration "${secs}s" --warmup "$warmup")
  sessionbench put64 "${len[@]}" --mix append=100 --concurrency "$clients" --sessions "$sessions" --message-bytes "$value_bytes"
  sessionbench put64leader "${len[@]}" --mix append=100 --concurrency "$clients" --sessions "$sessions" --message-bytes "$value_bytes" --route leader
  sessionbench put1 "${len[@]}" --mix append=100 --concurrency 1 --sessions "$sessions" --message-bytes "$value_bytes"
  sessionbench put1leader "${len[@]}" --mix append=100 --concurrency 1 --sessions "$sessions" --message-bytes "$value_bytes" --route leader
  # The read workload needs its one session to exist: one put writes its fields.
  step 30 "$logs/sessionbench-create.log" "$logs/sessionbench-create.log" "$bin/sessionbench" --addrs "$s_addrs" \
    --progress 0 --prefix cmp --sessions 1 --mix put=100 --concurrency 1 --duration 0 --requests 1 || true
  if ! curl -fsS -m 5 "http://127.0.0.1:${s_http[0]}/api/chat/session/bench-cmp-0/state" >"$res/record.json"; then
    say "warning: the session to read could not be written; its reads will find nothing"
    echo '{"step":0}' >"$res/record.json"
  fi
  say "the record read: $(wc -c <"$res/record.json") bytes, $(cat "$res/record.json")"
  sessionbench read64 "${len[@]}" --mix state=100 --concurrency "$clients" --prefix cmp --sessions 1
  sessionbench read1 "${len[@]}" --mix state=100 --concurrency 1 --prefix cmp --sessions 1
  stop_servers
}

# ------------------------------------------------------------ etcd
e_client=(12379 13379 14379)
e_peer=(12380 13380 14380)
e_endpoints=127.0.0.1:12379,127.0.0.1:13379,127.0.0.1:14379

start_etcd() {
  local i cluster=""
  ports_free "${e_client[@]}" "${e_peer[@]}"
  for i in 0 1 2; do cluster+="${cluster:+,}e$((i + 1))=http://127.0.0.1:${e_peer[i]}"; done
  e_pids=()
  for i in 0 1 2; do
    start "etcd-e$((i + 1))" etcd --name "e$((i + 1))" --data-dir "$tmp/etcd/e$((i + 1))" \
      --listen-client-urls "http://127.0.0.1:${e_client[i]}" --advertise-client-urls "http://127.0.0.1:${e_client[i]}" \
      --listen-peer-urls "http://127.0.0.1:${e_peer[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${e_peer[i]}" \
      --initial-cluster "$cluster" --initial-cluster-token bench-compare --initial-cluster-state new \
      --logger zap --log-outputs stderr
    e_pids+=("${pids[-1]}")
  done
  for i in 0 1 2; do
    wait_for 60 etcd_healthy "${e_client[i]}" || { say "etcd e$((i + 1)) not healthy after 60 s" >&2; exit 1; }
  done
  say "etcd ready"
}

etcd_healthy() { [[ $(curl -fsS -m 2 "http://127.0.0.1:$1/health") == *'"health":"true"'* ]]; }

# etcd_requests_for NAME: ETCD_REQUESTS, or what sessiond completed in NAME.
etcd_requests_for() {
  if [ -n "$etcd_requests" ]; then echo "$etcd_requests"; return; fi
  python3 - "$res/sessiond-$1.json" <<'PY' 2>/dev/null || echo 1000
import json, sys
print(max(1000, json.load(open(sys.argv[1]))["total"]["count"]))
PY
}

# etcdbench NAME ARGS...: one etcd workload, report in $res/etcd-NAME.txt.
etcdbench() {
  local name=$1; shift
  say "benchmark --precise --endpoints=$e_endpoints $*"
  cpu_start "${e_pids[@]}"
  step $((secs * 4 + 120)) "$res/etcd-$name.txt" "$logs/etcd-benchmark-$name.log" \
    "$etcd_bench" --precise --endpoints="$e_endpoints" "$@" ||
    say "warning: etcd benchmark $name failed; see the table"
  cpu_end "$res/cpu-etcd-$name" "${e_pids[@]}"
}

run_etcd() {
  hdr "etcd: 3 members ($(etcd --version 2>/dev/null | head -1))"
  start_etcd
  local put=(put --key-size=16 --val-size="$value_bytes" --key-space-size="$sessions")
  etcdbench put64 --conns="$etcd_conns" --clients="$clients" "${put[@]}" --total="$(etcd_requests_for put64)"
  etcdbench put1 --conns=1 --clients=1 "${put[@]}" --total="$(etcd_requests_for put1)"
  # The same bytes sessiond served as its record, under one key.
  python3 - "$res/record.json" >"$tmp/put.json" <<'PY'
import base64, json, sys
value = open(sys.argv[1], "rb").read()
print(json.dumps({"key": base64.b64encode(b"/bench/record").decode(), "value": base64.b64encode(value).decode()}))
PY
  local got
  curl -fsS -m 5 -X POST "http://127.0.0.1:${e_client[0]}/v3/kv/put" -d @"$tmp/put.json" >/dev/null || true
  got=$(curl -fsS -m 5 -X POST "http://127.0.0.1:${e_client[0]}/v3/kv/range" \
    -d "{\"key\":\"$(printf /bench/record | base64)\"}" || true)
  [[ $got == *'"count":"1"'* ]] || say "warning: could not write etcd's record; its reads will find nothing"
  etcdbench read64 --conns="$etcd_conns" --clients="$clients" range /bench/record --consistency=l \
    --total="$(etcd_requests_for read64)"
  etcdbench read1 --conns=1 --clients=1 range /bench/record --consistency=l \
    --total="$(etcd_requests_for read1)"
  stop_servers
}

# ------------------------------------------------------------ rounds
run_rounds() {
  hdr "$rounds alternating rounds of 64-client writes, both clusters running"
  start_sessiond
  start_etcd
  local r len=(--duration "${round_secs}s" --warmup "$warmup")
  local put=(put --key-size=16 --val-size="$value_bytes" --key-space-size="$sessions")
  for r in $(seq "$rounds"); do
    sessionbench "put64-r$r" "${len[@]}" --mix append=100 --concurrency "$clients" --sessions "$sessions" --message-bytes "$value_bytes"
    sessionbench "put64leader-r$r" "${len[@]}" --mix append=100 --concurrency "$clients" --sessions "$sessions" --message-bytes "$value_bytes" --route leader
    etcdbench "put64-r$r" --conns="$etcd_conns" --clients="$clients" "${put[@]}" --total="$(etcd_requests_for "put64-r$r")"
  done
  stop_servers
}

rounds_table() {
  python3 - "$res" "$rounds" <<'PY'
import json, os, re, statistics, sys
res, rounds = sys.argv[1], int(sys.argv[2])

def sessiond(name):
    try:
        t = json.load(open(os.path.join(res, "sessiond-%s.json" % name)))["total"]
        return t["okPerSec"], t["latencyUs"]["p99"] / 1000, t["errors"]
    except (OSError, ValueError, KeyError):
        return None

def etcd(name):
    try:
        text = open(os.path.join(res, "etcd-%s.txt" % name)).read()
        return float(re.search(r"Requests/sec:\s*([0-9.]+)", text).group(1)), \
            float(re.search(r"\b99% in ([0-9.]+) secs", text).group(1)) * 1000
    except (OSError, AttributeError):
        return None

fmt = "%-6s %11s %8s %15s %8s %6s %6s %15s %8s %6s %6s"
print(fmt % ("round", "etcd ops/s", "p99 ms", "round-robin", "p99 ms", "errors", "ratio",
             "to leaders", "p99 ms", "errors", "ratio"))
ratios = {"rr": [], "leader": []}
for r in range(1, rounds + 1):
    e = etcd("put64-r%d" % r)
    cells = ["%d" % r] + (["%.0f" % e[0], "%.2f" % e[1]] if e else ["FAILED", "-"])
    for key, name in (("rr", "put64-r%d"), ("leader", "put64leader-r%d")):
        s = sessiond(name % r)
        ratio = s[0] / e[0] if s and e and e[0] > 0 else None
        if ratio is not None:
            ratios[key].append(ratio)
        cells += (["%.0f" % s[0], "%.2f" % s[1], "%d" % s[2]] if s else ["FAILED", "-", "-"]) + \
            ["%.2f" % ratio if ratio is not None else "-"]
    print(fmt % tuple(cells))
for key, label in (("rr", "round-robin"), ("leader", "sent to leaders")):
    if ratios[key]:
        print("median sessiond/etcd, %s: %.2f (from %.2f to %.2f)" % (
            label, statistics.median(ratios[key]), min(ratios[key]), max(ratios[key])))

def cpu_per_request(system, name):
    # (servers, load generator) µs per request; sessiond's window includes
    # its warmup.
    try:
        servers, tool = (float(v) for v in open(os.path.join(res, "cpu-%s-%s" % (system, name))).read().split())
        if system == "etcd":
            text = open(os.path.join(res, "etcd-%s.txt" % name)).read()
            n = float(re.search(r"Total:\s*([0-9.]+) secs", text).group(1)) * \
                float(re.search(r"Requests/sec:\s*([0-9.]+)", text).group(1))
        else:
            r = json.load(open(os.path.join(res, "sessiond-%s.json" % name)))
            units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
            warmup = sum(float(v) * units[u]
                         for v, u in re.findall(r"([0-9.]+)(h|ms|m|s|us|µs|ns)", r["config"]["warmup"]))
            n = r["total"]["opsPerSec"] * (r["elapsedSeconds"] + warmup)
        return servers / n * 1e6, tool / n * 1e6
    except (OSError, ValueError, KeyError, AttributeError, ZeroDivisionError):
        return None

cells = []
for system, name, label in (("etcd", "put64-r%d", "etcd"), ("sessiond", "put64-r%d", "sessiond round-robin"),
                            ("sessiond", "put64leader-r%d", "sessiond to leaders")):
    got = [c for c in (cpu_per_request(system, name % r) for r in range(1, rounds + 1)) if c]
    if got:
        cells.append("%s %.0f (load generator %.0f)" % (label, statistics.median(c[0] for c in got),
                                                      statistics.median(c[1] for c in got)))
if cells:
    print("median CPU per write of the three servers, µs: " + "; ".join(cells))
PY
}

# ------------------------------------------------------------ table
table() {
  python3 - "$res" <<'PY'
import json, os, re, sys
res = sys.argv[1]
# (sessiond workload, etcd workload it is compared with, label)
rows = [("put64", "put64", "durable writes, 64 clients, 256 B"),
        ("put64leader", "put64", "  the same, sent to shard leaders"),
        ("put1", "put1", "serial writes, 1 client, 256 B"),
        ("put1leader", "put1", "  the same, sent to shard leaders"),
        ("read64", "read64", "linearizable reads of 1 record, 64 clients"),
        ("read1", "read1", "linearizable reads of 1 record, 1 client")]

def sessiond(name):
    try:
        r = json.load(open(os.path.join(res, "sessiond-%s.json" % name)))
    except (OSError, ValueError):
        return None
    t = r["total"]
    note = []
    if t["errors"]:
        kinds = dict(r.get("errorCodes") or {}, **(r.get("transportErrors") or {}))
        note.append("sessiond errors %d (%s)" % (t["errors"], ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
    if t["okEmpty"]:
        note.append("sessiond %d reads found no record" % t["okEmpty"])
    return t["okPerSec"], t["latencyUs"]["p50"] / 1000, t["latencyUs"]["p99"] / 1000, note

def etcd(name):
    try:
        text = open(os.path.join(res, "etcd-%s.txt" % name)).read()
    except OSError:
        return None
    rps = re.search(r"Requests/sec:\s*([0-9.]+)", text)
    p50 = re.search(r"\b50% in ([0-9.]+) secs", text)
    p99 = re.search(r"\b99% in ([0-9.]+) secs", text)
    if not (rps and p50 and p99):
        return None
    note = []
    errs = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", text.split("Error distribution:")[-1], re.M)) \
        if "Error distribution:" in text else 0
    if errs:
        note.append("etcd errors %d" % errs)
    return float(rps.group(1)), float(p50.group(1)) * 1000, float(p99.group(1)) * 1000, note

def cpu(system, name):
    try:
        servers, tool = open(os.path.join(res, "cpu-%s-%s" % (system, name))).read().split()
        return float(servers), float(tool)
    except (OSError, ValueError):
        return None

def etcd_requests(name):
    try:
        text = open(os.path.join(res, "etcd-%s.txt" % name)).read()
        return float(re.search(r"Total:\s*([0-9.]+) secs", text).group(1)) * \
            float(re.search(r"Requests/sec:\s*([0-9.]+)", text).group(1))
    except (OSError, AttributeError):
        return None

def sessiond_requests(name):
    # Requests over the CPU's window: the measured run and its warmup.
    try:
        r = json.load(open(os.path.join(res, "sessiond-%s.json" % name)))
        units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
        warmup = sum(float(v) * units[u] for v, u in re.findall(r"([0-9.]+)(h|ms|m|s|us|µs|ns)", r["config"]["warmup"]))
        return r["total"]["opsPerSec"] * (r["elapsedSeconds"] + warmup)
    except (OSError, ValueError, KeyError):
        return None

head = ("workload", "etcd ops/s", "p50 ms", "p99 ms", "sessiond ops/s", "p50 ms", "p99 ms", "sessiond/etcd")
fmt = "%-44s %11s %8s %8s %15s %8s %8s %14s"
print(fmt % head)
notes = []
for name, ename, label in rows:
    e, s = etcd(ename), sessiond(name)
    cells = []
    for m in (e, s):
        cells += ["%.0f" % m[0], "%.2f" % m[1], "%.2f" % m[2]] if m else ["FAILED", "-", "-"]
    ratio = "%.2f" % (s[0] / e[0]) if e and s and e[0] > 0 else "-"
    print(fmt % tuple([label] + cells + [ratio]))
    for m in ((e if ename == name else None), s):
        if m and m[3]:
            notes.append("%s: %s" % (label, "; ".join(m[3])))
for n in notes:
    print("note: " + n)

# CPU per request, from the cpu-* files: the servers apart from the load
# generator that shares the machine with them.
print()
print("CPU per request, µs (all three servers; the load generator apart; sessiond's include its warmup)")
fmt = "%-44s %13s %10s %17s %13s"
print(fmt % ("workload", "etcd servers", "etcd tool", "sessiond servers", "sessionbench"))
for name, ename, label in rows:
    cells = []
    for system, n, per in (("etcd", ename, etcd_requests), ("sessiond", name, sessiond_requests)):
        c, reqs = cpu(system, n), per(n)
        cells += ["%.0f" % (c[0] / reqs * 1e6), "%.0f" % (c[1] / reqs * 1e6)] if c and reqs else ["-", "-"]
    print(fmt % tuple([label] + cells))
PY
}

# ------------------------------------------------------------ main
t0=$SECONDS
say "bench-compare: $(nproc) CPUs, $(go version | awk '{print $3}'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "each sessiond workload ${secs}s after ${warmup} warmup; etcd: ${etcd_requests:-as many requests as sessiond completed}"
ensure_etcd
build_etcd_benchmark
say "building sessiond and sessionbench"
step 300 - - go build -o "$bin/sessiond" ./cmd/sessiond
step 300 - - go build -o "$bin/sessionbench" ./cmd/sessionbench

run_sessiond
run_etcd
if [ "$rounds" -gt 0 ]; then run_rounds; fi

hdr "results (ops/s: successful requests per second; latency of successful requests)"
table
if [ "$rounds" -gt 0 ]; then
  hdr "alternating rounds: 64 clients, 256-byte writes, ${round_secs}s each (sessiond ops/s and sessiond/etcd)"
  rounds_table
fi
say ""
say "etcd $(etcd --version 2>/dev/null | awk '/etcd Version/{print $3}'), benchmark tool from etcd $etcd_version, --conns=$etcd_conns for 64 clients"
say "sessiond $shards shards, flags: ${SESSIOND_FLAGS:-(none)}; load average at the end $(cut -d' ' -f1-3 /proc/loadavg); $((SECONDS - t0)) s"
