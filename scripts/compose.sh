#!/usr/bin/env bash
# Build and run the three-node docker compose cluster.
#
#   scripts/compose.sh build          static binary + image sessiond:local
#   scripts/compose.sh up             build, start node1..node3, wait until healthy,
#                                     copy ca.pem and tokens to .compose-secrets/PROJECT/
#   scripts/compose.sh secrets DIR    copy the cluster's ca.pem and tokens to DIR
#   scripts/compose.sh status         containers and their health
#   scripts/compose.sh logs [SERVICE] follow the logs
#   scripts/compose.sh down [--volumes]  stop and remove containers (and data and secrets)
#
# COMPOSE_PROJECT_NAME selects the compose project (default: sessiond), so a
# test run can use its own without touching a running cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-sessiond}
image=sessiond:local

compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}

build() {
  local version ctx
  version=$(git describe --always --dirty 2>/dev/null || echo dev)
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' RETURN
  echo "building sessiond $version (static)"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$ctx/sessiond" ./cmd/sessiond
  mkdir "$ctx/data"
  mkdir -m 700 "$ctx/secrets"
  echo "building image $image"
  DOCKER_BUILDKIT=0 docker build -q -f deploy/Dockerfile -t "$image" "$ctx" >/dev/null
}

# wait_healthy SERVICE... waits until every service's container reports healthy.
wait_healthy() {
  local deadline=$((SECONDS + 90)) svc id health
  for svc in "$@"; do
    while :; do
      id=$(compose ps -q "$svc" 2>/dev/null || true)
      health=$( [ -n "$id" ] && docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo starting)
      [ "$health" = healthy ] && break
      if [ $SECONDS -ge $deadline ]; then
        echo "$svc not healthy after 90s (health: $health)"; compose logs --tail 30 "$svc"; return 1
      fi
      sleep 1
    done
    echo "$svc healthy"
  done
}

# fetch_secrets DIR copies ca.pem and tokens, which the one-shot service
# "secrets" wrote into its volume, to DIR with mode 0600. docker cp reads
# the exited container's volume; nothing secret is printed.
fetch_secrets() {
  local dir=$1 id f
  id=$(compose ps -aq secrets 2>/dev/null | head -n 1)
  if [ -z "$id" ]; then
    echo "project $COMPOSE_PROJECT_NAME has no secrets container; start the cluster first" >&2
    return 1
  fi
  [ -d "$dir" ] || (umask 077 && mkdir -p "$dir")
  for f in ca.pem tokens; do
    rm -f "$dir/$f"
    docker cp "$id:/secrets/$f" "$dir/$f" >/dev/null # tokens is 0600 in the volume, and stays so
    chmod 600 "$dir/$f"
  done
}

case "${1:-}" in
  build) build ;;
  up)
    build
    compose up -d node1 node2 node3
    wait_healthy node1 node2 node3
    dir=$PWD/.compose-secrets/$COMPOSE_PROJECT_NAME
    fetch_secrets "$dir"
    p1=${SESSIOND_NODE1_PORT:-8081}
    echo "cluster ready: https://localhost:$p1 https://localhost:${SESSIOND_NODE2_PORT:-8082} https://localhost:${SESSIOND_NODE3_PORT:-8083}"
    echo "its CA and bearer tokens (admin, data, read) are in $dir:"
    echo "  curl --cacert $dir/ca.pem -H \"Authorization: Bearer \$(awk '\$1==\"admin\"{print \$2}' $dir/tokens)\" https://localhost:$p1/v1/cluster"
    echo "  export SESSIOND_CA=$dir/ca.pem SESSIOND_TOKEN=\$(awk '\$1==\"admin\"{print \$2}' $dir/tokens) SESSIOND_ADDR=https://localhost:$p1"
    ;;
  secrets)
    [ -n "${2:-}" ] || { echo "usage: scripts/compose.sh secrets DIR" >&2; exit 2; }
    fetch_secrets "$2"
    echo "copied ca.pem and tokens of project $COMPOSE_PROJECT_NAME to $2"
    ;;
  status) compose ps ;;
  logs) shift; compose logs -f "$@" ;;
  down)
    if [ "${2:-}" = --volumes ]; then
      compose --profile scale down --volumes
      rm -rf ".compose-secrets/$COMPOSE_PROJECT_NAME" # the CA they name is gone
    else
      compose --profile scale down
    fi
    ;;
  wait) shift; wait_healthy "$@" ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
