#!/usr/bin/env bash
# End-to-end test of sessiond across containers: builds the image, starts
# node1..node3 in a compose project of its own on ports of its own, runs the
# Go suite in ./e2e (kill -9 of a leader, a network partition, a full
# restart, a fourth node) and always removes the project, its volumes and its
# probe network again.
#
#   scripts/e2e-compose.sh
#
# Environment:
#   E2E_PROJECT    compose project (default sessiond-e2e-$$; never "sessiond")
#   E2E_BASE_PORT  host port of node1; node2..node5 take the next four (default 18081)
#   E2E_LOG_DIR    where the nodes' logs go when the run fails
#                  (default /tmp/<project>-logs)
#   E2E_GO_TEST_FLAGS  extra go test flags, e.g. -race
#
# It never touches another project: every compose command names its project,
# and it refuses to start when one of its host ports is already taken.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# compose lowercases project names; so do we, to know the network's name.
project=$(echo "${E2E_PROJECT:-sessiond-e2e-$$}" | tr '[:upper:]' '[:lower:]')
if [ "$project" = sessiond ]; then
  echo "e2e: refusing to use the default compose project \"sessiond\"" >&2
  exit 2
fi
export COMPOSE_PROJECT_NAME=$project
base_port=${E2E_BASE_PORT:-18081}
for i in 1 2 3 4 5; do
  export "SESSIOND_NODE${i}_PORT=$((base_port + i - 1))"
done
log_dir=${E2E_LOG_DIR:-/tmp/$project-logs}

if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
else
  compose_cmd=(docker-compose)
fi
compose() { "${compose_cmd[@]}" -p "$project" -f "$root/docker-compose.yml" "$@"; }

# Refuse ports that something already listens on or that a container publishes.
published=$(docker ps --format '{{.Ports}}')
for i in 1 2 3 4 5; do
  port=$((base_port + i - 1))
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "e2e: port $port is in use; set E2E_BASE_PORT to a free range" >&2
    exit 2
  fi
  if [[ $published == *":$port->"* ]]; then
    echo "e2e: a container already publishes port $port; set E2E_BASE_PORT" >&2
    exit 2
  fi
done

started=$SECONDS
out=$(mktemp)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ]; then
    mkdir -p "$log_dir"
    for svc in node1 node2 node3 node4; do
      id=$(compose --profile scale ps -q "$svc" 2>/dev/null || true)
      [ -n "$id" ] && docker logs --timestamps "$id" >"$log_dir/$svc.log" 2>&1 || true
    done
    echo "e2e: node logs saved in $log_dir"
  fi
  echo "e2e: removing compose project $project"
  compose --profile scale down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 ||
    echo "e2e: compose down failed; run: ${compose_cmd[*]} -p $project --profile scale down --volumes" >&2
  docker network rm "${project}_probe" >/dev/null 2>&1 || true
  if [ -s "$out" ]; then
    sed -n '/^==== sessiond e2e summary/,/^e2e run time/p' "$out"
  fi
  rm -f "$out"
  echo "e2e: $([ "$rc" -eq 0 ] && echo PASS || echo "FAIL (exit $rc)") in $((SECONDS - started))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "e2e: project $project, ports $SESSIOND_NODE1_PORT-$SESSIOND_NODE4_PORT, compose: ${compose_cmd[*]}"
scripts/compose.sh build
compose up -d node1 node2 node3
scripts/compose.sh wait node1 node2 node3

urls=node1=http://127.0.0.1:$SESSIOND_NODE1_PORT,node2=http://127.0.0.1:$SESSIOND_NODE2_PORT
urls=$urls,node3=http://127.0.0.1:$SESSIOND_NODE3_PORT,node4=http://127.0.0.1:$SESSIOND_NODE4_PORT
E2E_PROJECT=$project E2E_COMPOSE="${compose_cmd[*]}" E2E_COMPOSE_FILE=$root/docker-compose.yml E2E_URLS=$urls \
  go test -tags e2e -count=1 -timeout 12m -v ${E2E_GO_TEST_FLAGS:-} ./e2e 2>&1 | tee "$out"
