#!/usr/bin/env bash
# Run a three-node sessiond cluster as local processes on loopback.
#
#   scripts/cluster.sh up       build, start node1..node3, wait until all are ready
#   scripts/cluster.sh start N  start one more node N (4..9) that joins the cluster
#   scripts/cluster.sh stop N   stop node N (SIGTERM: it drains first); kill N sends SIGKILL
#   scripts/cluster.sh status   pid, readiness and leader count of each node
#   scripts/cluster.sh logs [N] tail the logs (of node N)
#   scripts/cluster.sh down     stop every node (SIGTERM), keep their data
#   scripts/cluster.sh clean    stop every node and delete data/cluster
#
# Node N serves HTTP on 808N, raft on 700N and gossip on 7946+N; data and
# logs live under data/cluster/nodeN. Extra flags for every node can be
# passed in SESSIOND_CLUSTER_FLAGS (for example "--shards 8").
set -euo pipefail
cd "$(dirname "$0")/.."

root=data/cluster
bin=$root/sessiond
nodes=(1 2 3)
join="127.0.0.1:7947,127.0.0.1:7948,127.0.0.1:7949"

http_port()   { echo $((8080 + $1)); }
raft_port()   { echo $((7000 + $1)); }
gossip_port() { echo $((7946 + $1)); }

pid_of() {
  local f=$root/node$1/pid
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

ready() { curl -fsS -m 2 "http://127.0.0.1:$(http_port "$1")/readyz" >/dev/null 2>&1; }

# all_nodes lists every node that has a directory under data/cluster.
all_nodes() {
  local d
  for d in "$root"/node*; do [ -d "$d" ] && echo "${d##*/node}"; done | sort -n
}

start_node() {
  local n=$1 pid
  if pid=$(pid_of "$n"); then
    echo "node$n already running (pid $pid)"; return
  fi
  mkdir -p "$root/node$n"
  # shellcheck disable=SC2086
  nohup "$bin" --node-id "node$n" --data-dir "$root/node$n/data" \
    --http-addr "127.0.0.1:$(http_port "$n")" --raft-addr "127.0.0.1:$(raft_port "$n")" \
    --gossip-addr "127.0.0.1:$(gossip_port "$n")" --join "$join" --bootstrap-expect 3 \
    ${SESSIOND_CLUSTER_FLAGS:-} >>"$root/node$n/log" 2>&1 &
  echo $! >"$root/node$n/pid"
  echo "started node$n (pid $!) http=127.0.0.1:$(http_port "$n")"
}

wait_ready() {
  local deadline=$((SECONDS + 60)) n
  for n in "$@"; do
    until ready "$n"; do
      if ! pid_of "$n" >/dev/null; then
        echo "node$n exited; last log lines:"; tail -20 "$root/node$n/log"; exit 1
      fi
      if [ $SECONDS -ge $deadline ]; then
        echo "node$n not ready after 60s; see $root/node$n/log"; exit 1
      fi
      sleep 0.2
    done
  done
}

build() {
  mkdir -p "$root"
  echo "building sessiond"
  go build -o "$bin" ./cmd/sessiond
}

up() {
  build
  for n in "${nodes[@]}"; do start_node "$n"; done
  wait_ready "${nodes[@]}"
  echo "cluster ready: http://127.0.0.1:8081 http://127.0.0.1:8082 http://127.0.0.1:8083"
}

stop_node() {
  local n=$1 sig=${2:-TERM} pid
  if pid=$(pid_of "$n"); then
    kill -"$sig" "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    echo "stopped node$n"
  fi
  rm -f "$root/node$n/pid"
}

down() {
  local n
  for n in $(all_nodes); do stop_node "$n"; done
}

status() {
  printf '%-6s %-8s %-6s %s\n' NODE PID READY LEADING
  for n in $(all_nodes); do
    local pid ready_s leading=-
    pid=$(pid_of "$n" || echo -)
    if ready "$n"; then ready_s=yes; else ready_s=no; fi
    if [ "$pid" != - ]; then
      leading=$(curl -fsS -m 2 "http://127.0.0.1:$(http_port "$n")/v1/cluster" 2>/dev/null |
        grep -o '"state":"Leader"' | wc -l || true)
    fi
    printf '%-6s %-8s %-6s %s\n' "node$n" "$pid" "$ready_s" "$leading"
  done
}

logs() {
  if [ -n "${1:-}" ]; then tail -n 50 -f "$root/node$1/log"; else tail -n 20 -f "$root"/node*/log; fi
}

case "${1:-}" in
  up) up ;;
  start)
    [ -n "${2:-}" ] || { echo "usage: $0 start N"; exit 2; }
    [ -x "$bin" ] || build
    start_node "$2"; wait_ready "$2" ;;
  stop) stop_node "${2:?usage: $0 stop N}" ;;
  kill) stop_node "${2:?usage: $0 kill N}" KILL ;;
  down) down ;;
  status) status ;;
  logs) logs "${2:-}" ;;
  clean) down; rm -rf "$root" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
