#!/usr/bin/env bash
# Scrape a local three-node sessiond cluster with a real Prometheus.
#
#   scripts/metrics-demo.sh            start, write, scrape, query, stop
#   KEEP=1 scripts/metrics-demo.sh     leave everything running; prints how to stop it
#
# Starts three nodes with bearer tokens on loopback (ports from
# SESSIOND_DEMO_PORT, default random in 20000-39999: node N serves HTTP on
# PORT+N, raft on PORT+10+N, gossip on PORT+20+N; Prometheus listens on
# PORT+30), writes a few sessions, lets Prometheus (Debian's prometheus
# package) scrape /metrics with the read token, and queries it until the
# three nodes show. Everything it starts is stopped by pid, and its
# directory deleted, when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in prometheus curl jq; do
  command -v "$tool" >/dev/null || { echo "metrics-demo: $tool not found (apt-get install prometheus curl jq)" >&2; exit 2; }
done

port=${SESSIOND_DEMO_PORT:-$((20000 + RANDOM % 20000))}
prom_port=$((port + 30))
work=$(mktemp -d "${TMPDIR:-/tmp}/sessiond-metrics-demo.XXXXXX")
pids=()

cleanup() {
  local pid
  if [ "${KEEP:-0}" = 1 ]; then
    echo "KEEP=1: left running (pids ${pids[*]}); stop with: kill ${pids[*]}; rm -rf $work"
    return
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building sessiond"
go build -o "$work/sessiond" ./cmd/sessiond

# Without TLS the nodes call each other with the admin token.
admin_token=admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
read_token=read-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
data_token=data-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'admin %s\nread %s\ndata %s\n' "$admin_token" "$read_token" "$data_token" >"$work/tokens"
printf '%s' "$read_token" >"$work/read-token"
chmod 600 "$work/tokens" "$work/read-token"

join=127.0.0.1:$((port + 21)),127.0.0.1:$((port + 22)),127.0.0.1:$((port + 23))
echo "== starting node1..node3 (HTTP 127.0.0.1:$((port + 1))-$((port + 3)))"
for n in 1 2 3; do
  mkdir -p "$work/node$n"
  "$work/sessiond" --node-id "node$n" --data-dir "$work/node$n/data" \
    --http-addr "127.0.0.1:$((port + n))" --raft-addr "127.0.0.1:$((port + 10 + n))" \
    --gossip-addr "127.0.0.1:$((port + 20 + n))" --join "$join" --bootstrap-expect 3 \
    --token-file "$work/tokens" >"$work/node$n/log" 2>&1 &
  pids+=($!)
done
for n in 1 2 3; do
  deadline=$((SECONDS + 60))
  until curl -fsS -m 2 "http://127.0.0.1:$((port + n))/readyz" >/dev/null 2>&1; do
    if ! kill -0 "${pids[$((n - 1))]}" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "node$n not ready after 60s:"; tail -20 "$work/node$n/log"; exit 1
    fi
    sleep 0.2
  done
done

echo "== writing 30 messages through every node"
for i in $(seq 1 30); do
  n=$((i % 3 + 1))
  curl -fsS -o /dev/null -H "Authorization: Bearer $data_token" \
    -X POST "http://127.0.0.1:$((port + n))/api/chat/session/demo-$((i % 10))/messages" \
    -d "{\"id\":\"m$i\",\"role\":\"user\",\"content\":\"hello $i\"}"
done

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sessiond
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: $work/read-token
    static_configs:
      - targets: ["127.0.0.1:$((port + 1))", "127.0.0.1:$((port + 2))", "127.0.0.1:$((port + 3))"]
EOF
echo "== starting Prometheus on 127.0.0.1:$prom_port"
prometheus --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/prometheus" \
  --web.listen-address "127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)

query() {
  curl -fsS -m 5 "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" 2>/dev/null
}

echo "== querying until Prometheus has scraped all three nodes"
deadline=$((SECONDS + 60))
until [ "$(query 'count(up{job="sessiond"} == 1)' | jq -r '.data.result[0].value[1] // 0')" = 3 ]; do
  if [ $SECONDS -ge $deadline ]; then
    echo "Prometheus does not see three healthy targets after 60s:"
    curl -fsS "http://127.0.0.1:$prom_port/api/v1/targets" | jq -r '.data.activeTargets[] | "\(.scrapeUrl) \(.health) \(.lastError)"' || true
    tail -20 "$work/prometheus.log"
    exit 1
  fi
  sleep 1
done

show() {
  echo "-- $1"
  query "$1" | jq -r '.data.result[] | "\(.metric.instance // "all")\t\(.value[1])"' | sort
}
show 'sum by (instance) (sessiond_shard_leader)'
show 'sum by (instance) (sessiond_http_request_duration_seconds_count{route="/api/chat/session/:id/messages"})'
show 'sum by (instance) (sessiond_raftlog_commits_total)'
echo "== three nodes scraped"
