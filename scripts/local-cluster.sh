#!/usr/bin/env bash
# A local PBFT cluster of separate processes on 127.0.0.1: one nats-server (on a free
# port) and the replicas n1..n4, built from this repository into bin/. State (keys, pid
# files, logs, the NATS URL) is kept in .local-cluster/ at the repository root.
#
#   scripts/local-cluster.sh start    build, then start nats-server and the replicas
#   scripts/local-cluster.sh status   what runs (exit 0 only when everything does)
#   scripts/local-cluster.sh url      the NATS URL, for PBFT_NATS_URL
#   scripts/local-cluster.sh stop     stop what start started (by its pid files)
#
# PBFT_ settings in the environment reach the replicas (e.g. PBFT_TRACE=on); their id,
# ids, NATS URL and keys directory are set here. PBFT_LOCAL_CLUSTER_DIR moves the state
# directory (tests use a temporary one).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${PBFT_LOCAL_CLUSTER_DIR:-$root/.local-cluster}"
ids=(n1 n2 n3 n4)
node_ids="$(IFS=,; echo "${ids[*]}")"

die() { echo "local-cluster: $*" >&2; exit 1; }

# running NAME: whether the process in NAME's pid file runs and is the program we
# started (a pid reused by another program is not ours to stop).
running() {
  local pidfile="$dir/$1.pid" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$root/bin/" || return 1
}

# launch NAME CMD...: starts CMD in the background, output to logs/NAME.log.
launch() {
  local name="$1"; shift
  "$@" </dev/null >>"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

start() {
  for name in nats "${ids[@]}"; do
    if running "$name"; then die "$name already runs (pid $(<"$dir/$name.pid")); stop it first"; fi
  done
  mkdir -p "$dir/logs" "$root/bin"
  echo "local-cluster: building into $root/bin"
  (cd "$root" && go build -o bin/ ./cmd/replica ./cmd/gateway && go build -o bin/nats-server github.com/nats-io/nats-server/v2)
  if [[ ! -f "$dir/keys/gateway.key" ]]; then
    "$root/bin/replica" keygen -dir "$dir/keys" "${ids[@]}" gateway >/dev/null
  fi

  rm -f "$dir"/nats-server_*.ports "$dir/nats.url"
  launch nats "$root/bin/nats-server" -a 127.0.0.1 -p -1 --ports_file_dir "$dir"
  local ports="" url=""
  for _ in $(seq 100); do # the ports file appears once NATS listens (at most 10 s)
    ports="$(ls "$dir"/nats-server_*.ports 2>/dev/null | head -n1 || true)"
    if [[ -n "$ports" ]]; then
      url="$(grep -o 'nats://127\.0\.0\.1:[0-9]*' "$ports" | head -n1 || true)"
      [[ -n "$url" ]] && break
    fi
    running nats || die "nats-server exited; see $dir/logs/nats.log"
    sleep 0.1
  done
  [[ -n "$url" ]] || die "nats-server did not report its port within 10 s; see $dir/logs/nats.log"
  echo "$url" >"$dir/nats.url"

  for id in "${ids[@]}"; do
    launch "$id" env PBFT_NODE_ID="$id" PBFT_NODE_IDS="$node_ids" PBFT_NATS_URL="$url" \
      PBFT_KEYS_DIR="$dir/keys" "$root/bin/replica"
  done
  for id in "${ids[@]}"; do
    running "$id" || die "replica $id did not start; see $dir/logs/$id.log"
  done
  echo "local-cluster: nats-server at $url, replicas ${ids[*]}; logs in $dir/logs"
}

stop() {
  local name pid
  for name in "${ids[@]}" nats; do
    if running "$name"; then
      pid="$(<"$dir/$name.pid")"
      kill -TERM "$pid"
      for _ in $(seq 50); do # up to 5 s to end, then SIGKILL
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
      echo "local-cluster: stopped $name (pid $pid)"
    fi
    rm -f "$dir/$name.pid"
  done
  rm -f "$dir"/nats-server_*.ports "$dir/nats.url"
}

status() {
  local name all=0
  for name in nats "${ids[@]}"; do
    if running "$name"; then
      echo "$name: running (pid $(<"$dir/$name.pid"))"
    else
      echo "$name: stopped"
      all=1
    fi
  done
  [[ -f "$dir/nats.url" ]] && echo "NATS: $(<"$dir/nats.url")"
  return "$all"
}

url() {
  [[ -f "$dir/nats.url" ]] && running nats || die "not running (scripts/local-cluster.sh start)"
  cat "$dir/nats.url"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) url ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
