#!/usr/bin/env bash
# Throw-away Redis servers for tests. `start` installs Debian's redis-server package when missing,
# starts a server on a free 127.0.0.1 port, waits until it answers PING, and records it in a state
# file; `stop` stops exactly the process recorded there. Instances are named, so a fault test can
# halt its own server without disturbing the one other test files share.
#
#   bash scripts/redis.sh start   # prints REDIS_PORT=... and "started" or "reused"; restarts a
#                                 # halted server on its port with its data (append-only file)
#   bash scripts/redis.sh halt    # stops the server process but keeps data dir, port and state
#   bash scripts/redis.sh stop    # stops the recorded server (no-op when none), removes its data
#   bash scripts/redis.sh status  # exit 0 when the recorded server answers ("halted": exit 1)
#   bash scripts/redis.sh cli KEYS 'farcall:*'   # one redis-cli command against the server
#
# Environment: REDIS_NAME (instance, [a-z0-9-]+, default "default": state in .tmp/redis.env; any
# other name: .tmp/redis-<name>.env), REDIS_PORT (first port tried for a new server, default
# 16380), REDIS_APPENDONLY (yes or no, default yes: whether a halted server comes back with its
# data, as a production server with AOF or RDB does; "no" makes every restart an empty server),
# REDIS_READY_S (readiness deadline in seconds, default 30). A Redis this script did not start is
# never touched.
#
# The server listens on 127.0.0.1 only, saves no RDB snapshots (--save ''), and with the
# append-only file on, writes it without fsync (--appendfsync no): a test server never needs the
# durability, and `halt` (SIGTERM) flushes the file before the process exits anyway.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="$root/.tmp"
name="${REDIS_NAME:-default}"
[[ "$name" =~ ^[a-z0-9-]{1,64}$ ]] || { echo "redis.sh: REDIS_NAME must match [a-z0-9-]{1,64}, got '$name'" >&2; exit 2; }
if [[ "$name" == default ]]; then
  state_file="$state_dir/redis.env"
  lock_file="$state_dir/redis.lock"
else
  state_file="$state_dir/redis-$name.env"
  lock_file="$state_dir/redis-$name.lock"
fi
# Held by whoever picks a port and launches a server, so two instances never pick the same port.
ports_lock_file="$state_dir/redis-ports.lock"
server_bin=/usr/bin/redis-server
cli_bin=/usr/bin/redis-cli
first_port="${REDIS_PORT:-16380}"
appendonly="${REDIS_APPENDONLY:-yes}"
[[ "$appendonly" == yes || "$appendonly" == no ]] || { echo "redis.sh: REDIS_APPENDONLY must be yes or no, got '$appendonly'" >&2; exit 2; }
ready_s="${REDIS_READY_S:-30}"

log() { echo "redis.sh [$name]: $*" >&2; }
die() { log "$*"; exit 1; }

# Field 22 of /proc/PID/stat: the process start time, so a recycled pid is never mistaken for ours
# (redis-server rewrites its command line, so /proc/PID/cmdline cannot tell). A zombie (state Z)
# has exited already and counts as gone.
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

# Answers PING with +PONG within 2 s: the server is serving clients (a server still loading its
# data answers -LOADING).
serving() {
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "PING\r\n" >&3
    IFS= read -r reply <&3
    [[ "$reply" == +PONG* ]]' _ "$1" 2>/dev/null
}

port_in_use() {
  timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Ports recorded by any instance's state file, halted ones included: a halted server owns its port.
recorded_ports() {
  local file
  for file in "$state_dir"/redis.env "$state_dir"/redis-*.env; do
    [[ -f "$file" ]] && sed -n 's/^REDIS_PORT=\([0-9][0-9]*\)$/\1/p' "$file"
  done
  return 0
}

# Loads the state file into REDIS_* variables; returns 1 when it is missing, halted, or its
# process is gone (the variables stay loaded for the caller either way).
recorded_alive() {
  REDIS_PID="" REDIS_PORT="" REDIS_START_TIME="" REDIS_DIR="" REDIS_HALTED="" REDIS_APPENDONLY_SET=""
  [[ -f "$state_file" ]] || return 1
  # Parsed, not sourced: only the known keys, only digits, yes/no or a path under /tmp.
  while IFS='=' read -r key value; do
    case "$key" in
      REDIS_PID | REDIS_PORT | REDIS_START_TIME) [[ "$value" =~ ^[0-9]+$ ]] && printf -v "$key" %s "$value" ;;
      REDIS_DIR) [[ "$value" =~ ^/tmp/farcall-redis\.[A-Za-z0-9]+$ ]] && REDIS_DIR="$value" ;;
      REDIS_APPENDONLY) [[ "$value" == yes || "$value" == no ]] && REDIS_APPENDONLY_SET="$value" ;;
      REDIS_HALTED) [[ "$value" == 1 ]] && REDIS_HALTED=1 ;;
    esac
  done <"$state_file"
  [[ -z "$REDIS_HALTED" && -n "$REDIS_PID" && -n "$REDIS_START_TIME" ]] || return 1
  [[ "$(start_time_of "$REDIS_PID" || true)" == "$REDIS_START_TIME" ]]
}

# A usable halted record: its data dir is still there.
recorded_halted() {
  [[ "$REDIS_HALTED" == 1 && -n "$REDIS_PORT" && -n "$REDIS_DIR" && -d "$REDIS_DIR" && -n "$REDIS_APPENDONLY_SET" ]]
}

write_state() { # pid port dir appendonly [halted]
  {
    if [[ -n "$1" ]]; then
      echo "REDIS_PID=$1"
      echo "REDIS_START_TIME=$(start_time_of "$1")"
    fi
    echo "REDIS_PORT=$2"
    echo "REDIS_DIR=$3"
    echo "REDIS_APPENDONLY=$4"
    [[ -z "${5:-}" ]] || echo "REDIS_HALTED=1"
  } >"$state_file.new"
  mv "$state_file.new" "$state_file"
}

install_if_missing() {
  [[ -x "$server_bin" ]] && return 0
  bash "$root/scripts/apt-install.sh" redis-server "$server_bin" || die "installing redis-server failed"
}

# Starts the server of data dir $1 on port $2 (append-only file $3) and waits until it serves;
# sets `pid`.
launch() {
  local dir=$1 port=$2 aof=$3
  rm -f "$dir/pid"
  # setsid detaches it from the caller's process group; the pid file is written by the process
  # itself before it execs redis-server, so the recorded pid is exactly the server's. It must not
  # inherit the locks' descriptors 7, 8 and 9, or it would hold them for its whole life.
  setsid bash -c 'echo $$ >"$1/pid"; exec "$2" --port "$3" --bind 127.0.0.1 --protected-mode yes --dir "$1" \
      --save "" --appendonly "$4" --appendfsync no --daemonize no --logfile "" --loglevel notice' \
    _ "$dir" "$server_bin" "$port" "$aof" >>"$dir/redis.log" 2>&1 </dev/null 7>&- 8>&- 9>&- &

  local deadline=$((SECONDS + ready_s))
  pid=""
  until [[ -n "$pid" ]] && serving "$port"; do
    [[ -z "$pid" && -s "$dir/pid" ]] && pid="$(cat "$dir/pid")"
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/redis.log" >&2 || true
      die "redis-server exited during start-up (log above, data in $dir)"
    fi
    if ((SECONDS >= deadline)); then
      for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -n "$pid" || ! -s "$dir/pid" ]] || pid="$(cat "$dir/pid")"; [[ -n "$pid" ]] && break; sleep 0.1; done
      [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
      tail -n 30 "$dir/redis.log" >&2 || true
      die "redis-server did not serve on 127.0.0.1:$port within $ready_s s"
    fi
    sleep 0.05
  done
}

lock_ports() {
  exec 8>"$ports_lock_file"
  flock -w $((ready_s + 60)) 8 || die "another redis.sh holds $ports_lock_file"
}

start() {
  if recorded_alive; then
    serving "$REDIS_PORT" || die "recorded Redis (pid $REDIS_PID) is alive but not serving on $REDIS_PORT"
    echo "REDIS_PORT=$REDIS_PORT"
    echo reused
    return 0
  fi
  if recorded_halted; then
    lock_ports
    if port_in_use "$REDIS_PORT"; then
      die "cannot restart the halted server: port $REDIS_PORT is taken by another process (data kept in $REDIS_DIR; 'stop' forgets it)"
    fi
    launch "$REDIS_DIR" "$REDIS_PORT" "$REDIS_APPENDONLY_SET"
    write_state "$pid" "$REDIS_PORT" "$REDIS_DIR" "$REDIS_APPENDONLY_SET"
    echo "REDIS_PORT=$REDIS_PORT"
    echo started
    return 0
  fi
  # A recorded server that died (or a halted one whose data is gone): forget it and its data.
  [[ -n "$REDIS_DIR" ]] && rm -rf "$REDIS_DIR"
  rm -f "$state_file"
  install_if_missing

  lock_ports
  local taken port=$first_port
  taken=" $(recorded_ports | tr '\n' ' ') "
  while [[ "$taken" == *" $port "* ]] || port_in_use "$port"; do
    port=$((port + 1))
    ((port < first_port + 100)) || die "no free port in $first_port..$((first_port + 99))"
  done

  local dir
  dir="$(mktemp -d /tmp/farcall-redis.XXXXXXXX)"
  launch "$dir" "$port" "$appendonly"
  write_state "$pid" "$port" "$dir" "$appendonly"
  echo "REDIS_PORT=$port"
  echo started
}

# Ends the recorded process (SIGTERM, SIGKILL after 10 s); the caller checked recorded_alive.
kill_recorded() {
  kill -TERM "$REDIS_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 10)) killed=0
  while [[ "$(start_time_of "$REDIS_PID" || true)" == "$REDIS_START_TIME" ]]; do
    if ((SECONDS >= deadline)); then
      ((killed == 0)) || die "pid $REDIS_PID survived SIGKILL for 5 s"
      log "pid $REDIS_PID ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$REDIS_PID" 2>/dev/null || true
      killed=1 deadline=$((SECONDS + 5))
    fi
    sleep 0.02
  done
}

halt() {
  if ! recorded_alive; then
    recorded_halted && { echo halted; return 0; }
    die "no running Redis recorded in $state_file to halt"
  fi
  kill_recorded
  write_state "" "$REDIS_PORT" "$REDIS_DIR" "$REDIS_APPENDONLY_SET" halted
  echo halted
}

stop() {
  if recorded_alive; then
    kill_recorded
  elif [[ -z "$REDIS_HALTED" ]]; then
    [[ -n "$REDIS_DIR" ]] && rm -rf "$REDIS_DIR"
    rm -f "$state_file"
    return 0
  fi
  [[ -n "$REDIS_DIR" ]] && rm -rf "$REDIS_DIR"
  rm -f "$state_file"
  echo stopped
}

# One redis-cli command against the recorded server; its output and exit status are the command's.
cli() {
  (($# > 0)) || die "usage: cli <command> [args...], e.g. cli ZRANGE 'farcall:{svc}:providers' 0 -1 WITHSCORES"
  recorded_alive && serving "$REDIS_PORT" || die "no serving Redis recorded in $state_file"
  [[ -x "$cli_bin" ]] || die "$cli_bin is missing (Debian's redis-tools)"
  timeout 30 "$cli_bin" -h 127.0.0.1 -p "$REDIS_PORT" "$@" 9>&-
}

mkdir -p "$state_dir"
exec 9>"$lock_file"
flock -w 60 9 || die "another redis.sh holds $lock_file"
case "${1:-}" in
  start) start ;;
  halt) halt ;;
  stop) stop ;;
  status)
    if recorded_alive && serving "$REDIS_PORT"; then echo "REDIS_PORT=$REDIS_PORT"
    elif recorded_halted; then echo "REDIS_PORT=$REDIS_PORT"; echo halted; exit 1
    else exit 1
    fi ;;
  cli) shift; cli "$@" ;;
  *) die "usage: $0 start|halt|stop|status|cli <command...>" ;;
esac
