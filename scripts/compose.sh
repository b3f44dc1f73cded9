#!/usr/bin/env bash
# Build and run the three-node docker compose cluster.
#
#   scripts/compose.sh build          static binary + image sessiond:local
#   scripts/compose.sh up             build, start node1..node3, wait until healthy
#   scripts/compose.sh status         containers and their health
#   scripts/compose.sh logs [SERVICE] follow the logs
#   scripts/compose.sh down [--volumes]  stop and remove containers (and data)
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

case "${1:-}" in
  build) build ;;
  up)
    build
    compose up -d node1 node2 node3
    wait_healthy node1 node2 node3
    echo "cluster ready: http://localhost:8081 http://localhost:8082 http://localhost:8083"
    ;;
  status) compose ps ;;
  logs) shift; compose logs -f "$@" ;;
  down)
    if [ "${2:-}" = --volumes ]; then compose --profile scale down --volumes; else compose --profile scale down; fi
    ;;
  wait) shift; wait_healthy "$@" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
