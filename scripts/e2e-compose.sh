#!/usr/bin/env bash
# End-to-end test of sessiond across containers: builds the image, starts
# node1..node3 in a compose project of its own on ports of its own, runs the
# Go suite in ./e2e over HTTPS with the project's CA and admin token (what an
# outsider reaches without them, kill -9 of a leader, a network partition, a
# full restart, a fourth node) and always removes the project, its volumes and
# its probe network again.
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
base_port=${E2E_BASE_PORT:-18081}
log_dir=${E2E_LOG_DIR:-/tmp/$project-logs}
source scripts/lib/project.sh
project_check_ports

started=$SECONDS
out=$(mktemp)
secrets=$(mktemp -d)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  project_cleanup "$rc"
  docker network rm "${project}_probe" >/dev/null 2>&1 || true
  if [ -s "$out" ]; then
    sed -n '/^==== sessiond e2e summary/,/^e2e run time/p' "$out"
  fi
  rm -f "$out"
  rm -rf "$secrets"
  echo "e2e: $([ "$rc" -eq 0 ] && echo PASS || echo "FAIL (exit $rc)") in $((SECONDS - started))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "e2e: project $project, ports $SESSIOND_NODE1_PORT-$SESSIOND_NODE4_PORT, compose: ${compose_cmd[*]}"
scripts/compose.sh build
compose up -d node1 node2 node3
scripts/compose.sh wait node1 node2 node3

# The cluster is secured: the suite trusts its CA and sends the admin token.
scripts/compose.sh secrets "$secrets"
export SESSIOND_CA=$secrets/ca.pem
SESSIOND_TOKEN=$(awk '$1 == "admin" {print $2; exit}' "$secrets/tokens")
export SESSIOND_TOKEN
urls=node1=https://127.0.0.1:$SESSIOND_NODE1_PORT,node2=https://127.0.0.1:$SESSIOND_NODE2_PORT
urls=$urls,node3=https://127.0.0.1:$SESSIOND_NODE3_PORT,node4=https://127.0.0.1:$SESSIOND_NODE4_PORT
E2E_PROJECT=$project E2E_COMPOSE="${compose_cmd[*]}" E2E_COMPOSE_FILE=$root/docker-compose.yml E2E_URLS=$urls \
  go test -tags e2e -count=1 -timeout 12m -v ${E2E_GO_TEST_FLAGS:-} ./e2e 2>&1 | tee "$out"
