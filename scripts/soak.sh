#!/usr/bin/env bash
# A long fault-injection run against local processes: sessioncheck with every
# fault kind at a short interval, then its report.
#
#   scripts/soak.sh            # 30 minutes
#   scripts/soak.sh 2h         # any Go duration
#   SOAK_OUT=/tmp/soak scripts/soak.sh 10m --seed 7   # extra flags go to sessioncheck
#
# The nodes run in network namespaces when root and ip(8) allow it (so
# partitions are real); see sessioncheck --netns. The local target takes
# snapshots often, so nodes back from a fault are also sent snapshots. The report
# (report.json, history.jsonl, and porcupine's visualization on a violation)
# goes to SOAK_OUT, default /tmp/sessiond-soak-<date>. The run is bounded: it
# stops by itself after the duration plus the checker's own time limits.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-30m}
shift || true
out=${SOAK_OUT:-/tmp/sessiond-soak-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

echo "soak: $duration of sessioncheck --target local, every fault kind every 5 s; report in $out"
go build -o "$out/sessioncheck" ./cmd/sessioncheck
status=0
"$out/sessioncheck" --target local --faults all --fault-interval 5s --duration "$duration" \
  --out "$out" "$@" | tee "$out/summary.txt" || status=$?
echo "soak: exit $status; report in $out"
exit "$status"
