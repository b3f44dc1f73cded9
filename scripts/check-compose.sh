#!/usr/bin/env bash
# Fault-injection check across containers: builds the image, starts
# node1..node3 in a compose project of its own on ports of its own, runs
# cmd/sessioncheck against it (docker kill/start/stop/pause and network
# disconnect on a schedule, then linearizability and durability checks), and
# always removes the project and its volumes again.
#
#   scripts/check-compose.sh [sessioncheck flags]
#   scripts/check-compose.sh --duration 10m --seed 42 --out /tmp/check
#
# Defaults: --duration 2m, every fault kind, --fault-interval 5s.
# Environment:
#   CHECK_PROJECT    compose project (default sessiond-check-$$; never "sessiond")
#   CHECK_BASE_PORT  host port of node1; node2..node5 take the next four (default 18181)
#   CHECK_LOG_DIR    where the nodes' logs go when the run fails
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

project=$(echo "${CHECK_PROJECT:-sessiond-check-$$}" | tr '[:upper:]' '[:lower:]')
base_port=${CHECK_BASE_PORT:-18181}
log_dir=${CHECK_LOG_DIR:-/tmp/$project-logs}
source scripts/lib/project.sh
project_check_ports
# Snapshot often, so a node back from a partition is sent a snapshot.
export SESSIOND_SNAPSHOT_THRESHOLD=${SESSIOND_SNAPSHOT_THRESHOLD:-256}
export SESSIOND_SNAPSHOT_INTERVAL=${SESSIOND_SNAPSHOT_INTERVAL:-2s}

started=$SECONDS
secrets=$(mktemp -d)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  project_cleanup "$rc"
  rm -f "/tmp/$project-sessioncheck"
  rm -rf "$secrets"
  echo "check: $([ "$rc" -eq 0 ] && echo PASS || echo "FAIL (exit $rc)") in $((SECONDS - started))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "check: project $project, ports $SESSIOND_NODE1_PORT-$SESSIOND_NODE3_PORT"
go build -o "/tmp/$project-sessioncheck" ./cmd/sessioncheck
scripts/compose.sh build
compose up -d node1 node2 node3
scripts/compose.sh wait node1 node2 node3

# The cluster is secured: sessioncheck trusts its CA and sends the admin
# token (drain needs admin), both from the environment.
scripts/compose.sh secrets "$secrets"
export SESSIOND_CA=$secrets/ca.pem
SESSIOND_TOKEN=$(awk '$1 == "admin" {print $2; exit}' "$secrets/tokens")
export SESSIOND_TOKEN
"/tmp/$project-sessioncheck" --target compose --compose-project "$project" \
  --compose-file "$root/docker-compose.yml" \
  --duration 2m --fault-interval 5s --faults all "$@"
