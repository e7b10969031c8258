#!/usr/bin/env bash
# Throw-away etcd servers for tests. `start` installs Debian's etcd-server package when missing,
# starts a single-member server on free 127.0.0.1 ports with fast test timings, waits until it
# serves, and records it in a state file; `stop` stops exactly the process recorded there.
# Instances are named, so a fault test can halt its own server without disturbing the one other
# test files use.
#
#   bash scripts/etcd.sh start   # prints ETCD_PORT=... and "started" or "reused";
#                                # restarts a halted server on its ports with its data
#   bash scripts/etcd.sh halt    # stops the server process but keeps data dir, ports and state
#   bash scripts/etcd.sh stop    # stops the recorded server (no-op when none), removes its data
#   bash scripts/etcd.sh status  # exit 0 when the recorded server answers ("halted": exit 1)
#
# Environment: ETCD_NAME (instance, [a-z0-9-]+, default "default": state in .tmp/etcd.env; any
# other name: .tmp/etcd-<name>.env), ETCD_PORT (first port tried for a new server, default 23790;
# the client port and the peer port are two free ports from there), ETCD_READY_S (readiness
# deadline in seconds, default 30). An etcd this script did not start is never touched.
#
# Timings: --heartbeat-interval 10 --election-timeout 100 (ms), so the member elects itself in
# about 0.1 s and honours lease TTLs down to 1 s (etcd's minimum TTL is 1.5 × election timeout);
# --unsafe-no-fsync, as nothing here needs durability across a machine crash. Halting is an
# outage as clients see it: leases and keys are in the data dir, so after `start` the server
# restores them and gives every lease its full TTL again from the moment it is leader.
# It listens on 127.0.0.1 only (client, peer and metrics); /health and /metrics are on the
# client port.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="$root/.tmp"
name="${ETCD_NAME:-default}"
[[ "$name" =~ ^[a-z0-9-]{1,64}$ ]] || { echo "etcd.sh: ETCD_NAME must match [a-z0-9-]{1,64}, got '$name'" >&2; exit 2; }
if [[ "$name" == default ]]; then
  state_file="$state_dir/etcd.env"
  lock_file="$state_dir/etcd.lock"
else
  state_file="$state_dir/etcd-$name.env"
  lock_file="$state_dir/etcd-$name.lock"
fi
# Held by whoever picks ports and launches a server, so two instances never pick the same port.
ports_lock_file="$state_dir/etcd-ports.lock"
binary=/usr/bin/etcd
first_port="${ETCD_PORT:-23790}"
ready_s="${ETCD_READY_S:-30}"

log() { echo "etcd.sh [$name]: $*" >&2; }
die() { log "$*"; exit 1; }

# Field 22 of /proc/PID/stat: the process start time, so a recycled pid is never mistaken for ours.
# A zombie (state Z) has exited already and counts as gone.
start_time_of() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # The command name (field 2) may contain spaces; count fields after its closing parenthesis.
  stat="${stat##*) }"
  # shellcheck disable=SC2086
  set -- $stat
  [[ "$1" != Z ]] || return 1
  echo "${20}"
}

# Answers `GET /health` with {"health":"true"} within 2 s: the member has a leader and serves.
serving() {
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
    grep -q "\"health\":\"true\"" <&3' _ "$1" 2>/dev/null
}

port_in_use() {
  timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Ports recorded by any instance's state file, halted ones included: a halted server owns its ports.
recorded_ports() {
  local file
  for file in "$state_dir"/etcd.env "$state_dir"/etcd-*.env; do
    [[ -f "$file" ]] && sed -n 's/^ETCD_\(PEER_\)\{0,1\}PORT=\([0-9][0-9]*\)$/\2/p' "$file"
  done
  return 0
}

# Loads the state file into ETCD_* variables; returns 1 when it is missing, halted, or its
# process is gone (the variables stay loaded for the caller either way).
recorded_alive() {
  ETCD_PID="" ETCD_PORT="" ETCD_PEER_PORT="" ETCD_START_TIME="" ETCD_DIR="" ETCD_HALTED=""
  [[ -f "$state_file" ]] || return 1
  # Parsed, not sourced: only the known keys, only digits or a path under /tmp.
  while IFS='=' read -r key value; do
    case "$key" in
      ETCD_PID | ETCD_PORT | ETCD_PEER_PORT | ETCD_START_TIME) [[ "$value" =~ ^[0-9]+$ ]] && printf -v "$key" %s "$value" ;;
      ETCD_DIR) [[ "$value" =~ ^/tmp/farcall-etcd\.[A-Za-z0-9]+$ ]] && ETCD_DIR="$value" ;;
      ETCD_HALTED) [[ "$value" == 1 ]] && ETCD_HALTED=1 ;;
    esac
  done <"$state_file"
  [[ -z "$ETCD_HALTED" && -n "$ETCD_PID" && -n "$ETCD_START_TIME" ]] || return 1
  [[ "$(start_time_of "$ETCD_PID" || true)" == "$ETCD_START_TIME" ]]
}

# A usable halted record: its data dir is still there.
recorded_halted() {
  [[ "$ETCD_HALTED" == 1 && -n "$ETCD_PORT" && -n "$ETCD_PEER_PORT" && -n "$ETCD_DIR" && -d "$ETCD_DIR/data" ]]
}

write_state() { # pid port peer_port dir [halted]
  {
    if [[ -n "$1" ]]; then
      echo "ETCD_PID=$1"
      echo "ETCD_START_TIME=$(start_time_of "$1")"
    fi
    echo "ETCD_PORT=$2"
    echo "ETCD_PEER_PORT=$3"
    echo "ETCD_DIR=$4"
    [[ -z "${5:-}" ]] || echo "ETCD_HALTED=1"
  } >"$state_file.new"
  mv "$state_file.new" "$state_file"
}

install_if_missing() {
  [[ -x "$binary" ]] && return 0
  bash "$root/scripts/apt-install.sh" etcd-server "$binary" || die "installing etcd-server failed"
}

# Starts the server of data dir $1 on client port $2 and peer port $3, waits until it serves;
# sets `pid`. The same flags serve a first start and a restart (etcd ignores the initial-cluster
# flags once its data dir holds a member).
launch() {
  local dir=$1 port=$2 peer=$3
  rm -f "$dir/pid"
  # setsid detaches it from the caller's process group; the pid file is written by the process
  # itself before it execs etcd, so the recorded pid is exactly the server's. It must not inherit
  # the locks' descriptors 8 and 9, or it would hold them for its whole life.
  # etcd reads ETCD_* environment variables as flags (and refuses ETCD_NAME next to --name): the
  # server gets none of the caller's.
  setsid bash -c 'echo $$ >"$1/pid"; unset $(compgen -e ETCD_); exec "$2" --name farcall --data-dir "$1/data" \
      --listen-client-urls "http://127.0.0.1:$3" --advertise-client-urls "http://127.0.0.1:$3" \
      --listen-peer-urls "http://127.0.0.1:$4" --initial-advertise-peer-urls "http://127.0.0.1:$4" \
      --initial-cluster "farcall=http://127.0.0.1:$4" --initial-cluster-state new \
      --unsafe-no-fsync --heartbeat-interval 10 --election-timeout 100 --logger zap --log-outputs stderr' \
    _ "$dir" "$binary" "$port" "$peer" >>"$dir/etcd.log" 2>&1 </dev/null 8>&- 9>&- &

  local deadline=$((SECONDS + ready_s))
  pid=""
  until [[ -n "$pid" ]] && serving "$port"; do
    [[ -z "$pid" && -s "$dir/pid" ]] && pid="$(cat "$dir/pid")"
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/etcd.log" >&2 || true
      die "etcd exited during start-up (log above, data in $dir)"
    fi
    if ((SECONDS >= deadline)); then
      for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -n "$pid" || ! -s "$dir/pid" ]] || pid="$(cat "$dir/pid")"; [[ -n "$pid" ]] && break; sleep 0.1; done
      [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
      tail -n 30 "$dir/etcd.log" >&2 || true
      die "etcd did not serve on 127.0.0.1:$port within $ready_s s"
    fi
    sleep 0.05
  done
}

lock_ports() {
  exec 8>"$ports_lock_file"
  flock -w $((ready_s + 60)) 8 || die "another etcd.sh holds $ports_lock_file"
}

start() {
  if recorded_alive; then
    serving "$ETCD_PORT" || die "recorded etcd (pid $ETCD_PID) is alive but not serving on $ETCD_PORT"
    echo "ETCD_PORT=$ETCD_PORT"
    echo reused
    return 0
  fi
  if recorded_halted; then
    lock_ports
    local p
    for p in "$ETCD_PORT" "$ETCD_PEER_PORT"; do
      if port_in_use "$p"; then
        die "cannot restart the halted server: port $p is taken by another process (data kept in $ETCD_DIR; 'stop' forgets it)"
      fi
    done
    launch "$ETCD_DIR" "$ETCD_PORT" "$ETCD_PEER_PORT"
    write_state "$pid" "$ETCD_PORT" "$ETCD_PEER_PORT" "$ETCD_DIR"
    echo "ETCD_PORT=$ETCD_PORT"
    echo started
    return 0
  fi
  # A recorded server that died (or a halted one whose data is gone): forget it and its data.
  [[ -n "$ETCD_DIR" ]] && rm -rf "$ETCD_DIR"
  rm -f "$state_file"
  install_if_missing

  lock_ports
  local taken port=$first_port found=()
  taken=" $(recorded_ports | tr '\n' ' ') "
  while ((${#found[@]} < 2)); do
    ((port < first_port + 200)) || die "no two free ports in $first_port..$((first_port + 199))"
    if [[ "$taken" != *" $port "* ]] && ! port_in_use "$port"; then found+=("$port"); fi
    port=$((port + 1))
  done

  local dir
  dir="$(mktemp -d /tmp/farcall-etcd.XXXXXXXX)"
  mkdir -m 700 "$dir/data"
  launch "$dir" "${found[0]}" "${found[1]}"
  write_state "$pid" "${found[0]}" "${found[1]}" "$dir"
  echo "ETCD_PORT=${found[0]}"
  echo started
}

# Ends the recorded process (SIGTERM, SIGKILL after 10 s); the caller checked recorded_alive.
kill_recorded() {
  kill -TERM "$ETCD_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 10)) killed=0
  while [[ "$(start_time_of "$ETCD_PID" || true)" == "$ETCD_START_TIME" ]]; do
    if ((SECONDS >= deadline)); then
      ((killed == 0)) || die "pid $ETCD_PID survived SIGKILL for 5 s"
      log "pid $ETCD_PID ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$ETCD_PID" 2>/dev/null || true
      killed=1 deadline=$((SECONDS + 5))
    fi
    sleep 0.02
  done
}

halt() {
  if ! recorded_alive; then
    recorded_halted && { echo halted; return 0; }
    die "no running etcd recorded in $state_file to halt"
  fi
  kill_recorded
  write_state "" "$ETCD_PORT" "$ETCD_PEER_PORT" "$ETCD_DIR" halted
  echo halted
}

stop() {
  if recorded_alive; then
    kill_recorded
  elif [[ -z "$ETCD_HALTED" ]]; then
    [[ -n "$ETCD_DIR" ]] && rm -rf "$ETCD_DIR"
    rm -f "$state_file"
    return 0
  fi
  [[ -n "$ETCD_DIR" ]] && rm -rf "$ETCD_DIR"
  rm -f "$state_file"
  echo stopped
}

mkdir -p "$state_dir"
exec 9>"$lock_file"
flock -w 60 9 || die "another etcd.sh holds $lock_file"
case "${1:-}" in
  start) start ;;
  halt) halt ;;
  stop) stop ;;
  status)
    if recorded_alive && serving "$ETCD_PORT"; then echo "ETCD_PORT=$ETCD_PORT"
    elif recorded_halted; then echo "ETCD_PORT=$ETCD_PORT"; echo halted; exit 1
    else exit 1
    fi ;;
  *) die "usage: $0 start|halt|stop|status" ;;
esac
