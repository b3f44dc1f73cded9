# Shared by the scripts that start a throwaway compose project of their own
# (e2e-compose.sh, check-compose.sh). Source it after setting:
#   project    compose project name (never "sessiond")
#   base_port  host port of node1; node2..node5 take the next four
#   log_dir    where node logs go when the run fails
# It defines compose(), project_check_ports and project_cleanup, and exports
# COMPOSE_PROJECT_NAME and SESSIOND_NODEn_PORT.

if [ "$project" = sessiond ]; then
  echo "refusing to use the default compose project \"sessiond\"" >&2
  exit 2
fi
export COMPOSE_PROJECT_NAME=$project
for i in 1 2 3 4 5; do
  export "SESSIOND_NODE${i}_PORT=$((base_port + i - 1))"
done

if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
else
  compose_cmd=(docker-compose)
fi
compose() { "${compose_cmd[@]}" -p "$project" -f "$root/docker-compose.yml" "$@"; }

# project_check_ports refuses ports that something already listens on or
# that a container publishes.
project_check_ports() {
  local published port i
  published=$(docker ps --format '{{.Ports}}')
  for i in 1 2 3 4 5; do
    port=$((base_port + i - 1))
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is in use; choose another base port" >&2
      exit 2
    fi
    if [[ $published == *":$port->"* ]]; then
      echo "a container already publishes port $port; choose another base port" >&2
      exit 2
    fi
  done
}

# project_cleanup RC saves the nodes' logs when RC is non-zero, then removes
# the project with its volumes.
project_cleanup() {
  local rc=$1 svc id
  if [ "$rc" -ne 0 ]; then
    mkdir -p "$log_dir"
    for svc in secrets node1 node2 node3 node4; do
      id=$(compose --profile scale ps -aq "$svc" 2>/dev/null | head -n 1 || true)
      [ -n "$id" ] && docker logs --timestamps "$id" >"$log_dir/$svc.log" 2>&1 || true
    done
    echo "node logs saved in $log_dir"
  fi
  echo "removing compose project $project"
  compose --profile scale down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 ||
    echo "compose down failed; run: ${compose_cmd[*]} -p $project --profile scale down --volumes" >&2
}
