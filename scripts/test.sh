#!/usr/bin/env bash
# The whole test suite: `go test ./...` after installing, when missing, the
# two Debian packages some tests drive for real: chromium (the web console's
# browser test in ui/) and prometheus (promtool checks /metrics in
# cmd/sessiond). Arguments go to go test, e.g. scripts/test.sh -race -count=1.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
  command -v google-chrome >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing ${missing[*]} (Debian packages the tests need)" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

exec go test "$@" ./...
