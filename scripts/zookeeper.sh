#!/usr/bin/env bash
# A throw-away ZooKeeper for tests: `start` installs Debian's zookeeper package when missing,
# starts a standalone server on a free 127.0.0.1 port with fast test timings, waits until it
# serves, and records it in .tmp/zookeeper.env; `stop` stops exactly the process recorded there.
#
#   bash scripts/zookeeper.sh start   # prints ZOOKEEPER_PORT=... and "started" or "reused"
#   bash scripts/zookeeper.sh stop    # stops the recorded server (no-op when none), removes its data
#   bash scripts/zookeeper.sh status  # exit 0 when the recorded server answers
#
# Environment: ZOOKEEPER_PORT (first port tried, default 21810), ZOOKEEPER_READY_S (readiness
# deadline in seconds, default 30). A ZooKeeper this script did not start is never touched.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="$root/.tmp"
state_file="$state_dir/zookeeper.env"
lock_file="$state_dir/zookeeper.lock"
jar=/usr/share/java/zookeeper.jar
first_port="${ZOOKEEPER_PORT:-21810}"
ready_s="${ZOOKEEPER_READY_S:-30}"

log() { echo "zookeeper.sh: $*" >&2; }
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

# Answers `srvr` with "Mode: standalone" within 2 s: the server is serving clients.
serving() {
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf srvr >&3
    grep -q "Mode: standalone" <&3' _ "$1" 2>/dev/null
}

port_in_use() {
  timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Loads the state file into ZK_* variables; returns 1 when it is missing or its process is gone.
recorded_alive() {
  [[ -f "$state_file" ]] || return 1
  ZOOKEEPER_PID="" ZOOKEEPER_PORT="" ZOOKEEPER_START_TIME="" ZOOKEEPER_DIR=""
  # Parsed, not sourced: only the four known keys, only digits or a path under /tmp.
  while IFS='=' read -r key value; do
    case "$key" in
      ZOOKEEPER_PID | ZOOKEEPER_PORT | ZOOKEEPER_START_TIME) [[ "$value" =~ ^[0-9]+$ ]] && printf -v "$key" %s "$value" ;;
      ZOOKEEPER_DIR) [[ "$value" =~ ^/tmp/farcall-zookeeper\.[A-Za-z0-9]+$ ]] && ZOOKEEPER_DIR="$value" ;;
    esac
  done <"$state_file"
  [[ -n "$ZOOKEEPER_PID" && -n "$ZOOKEEPER_START_TIME" ]] || return 1
  [[ "$(start_time_of "$ZOOKEEPER_PID" || true)" == "$ZOOKEEPER_START_TIME" ]]
}

install_if_missing() {
  [[ -f "$jar" ]] && return 0
  command -v java >/dev/null || log "no java on PATH: the zookeeper package will pull in default-jre"
  [[ "$(id -u)" == 0 ]] || die "$jar is missing and this is not root: run 'apt-get update && apt-get install -y zookeeper'"
  local t0=$SECONDS
  log "installing Debian's zookeeper package"
  local install_log="$state_dir/zookeeper-install.log"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends zookeeper; } >"$install_log" 2>&1; then
    tail -n 30 "$install_log" >&2
    die "installing zookeeper failed (whole log: $install_log)"
  fi
  [[ -f "$jar" ]] || die "apt-get installed zookeeper but $jar is missing"
  log "installed in $((SECONDS - t0)) s"
}

start() {
  if recorded_alive; then
    serving "$ZOOKEEPER_PORT" || die "recorded ZooKeeper (pid $ZOOKEEPER_PID) is alive but not serving on $ZOOKEEPER_PORT"
    echo "ZOOKEEPER_PORT=$ZOOKEEPER_PORT"
    echo reused
    return 0
  fi
  # A recorded server that died: forget it and its data.
  [[ -n "${ZOOKEEPER_DIR:-}" ]] && rm -rf "$ZOOKEEPER_DIR"
  rm -f "$state_file"
  install_if_missing

  local port=$first_port
  while port_in_use "$port"; do
    port=$((port + 1))
    ((port < first_port + 100)) || die "no free port in $first_port..$((first_port + 99))"
  done

  local dir
  dir="$(mktemp -d /tmp/farcall-zookeeper.XXXXXXXX)"
  mkdir "$dir/data"
  cat >"$dir/zoo.cfg" <<EOF
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
tickTime=500
minSessionTimeout=1000
maxSessionTimeout=60000
forceSync=no
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok,stat,cons,wchc
EOF
  local classpath=$jar
  [[ -f /usr/share/java/slf4j-simple.jar ]] && classpath="$classpath:/usr/share/java/slf4j-simple.jar"

  # setsid detaches it from the caller's process group; the pid file is written by the process
  # itself before it execs java, so the recorded pid is exactly the server's. It must not inherit
  # the lock's descriptor 9, or it would hold the lock for its whole life.
  setsid bash -c 'echo $$ >"$1/pid"; exec java -Xms16m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dzookeeper.admin.enableServer=false -cp "$2" org.apache.zookeeper.server.ZooKeeperServerMain "$1/zoo.cfg"' \
    _ "$dir" "$classpath" >"$dir/zookeeper.log" 2>&1 </dev/null 9>&- &

  local deadline=$((SECONDS + ready_s)) pid=""
  until [[ -n "$pid" ]] && serving "$port"; do
    [[ -z "$pid" && -s "$dir/pid" ]] && pid="$(cat "$dir/pid")"
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/zookeeper.log" >&2 || true
      die "ZooKeeper exited during start-up (log above, data in $dir)"
    fi
    if ((SECONDS >= deadline)); then
      for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -n "$pid" || ! -s "$dir/pid" ]] || pid="$(cat "$dir/pid")"; [[ -n "$pid" ]] && break; sleep 0.1; done
      [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
      tail -n 30 "$dir/zookeeper.log" >&2 || true
      die "ZooKeeper did not serve on 127.0.0.1:$port within $ready_s s"
    fi
    sleep 0.1
  done

  mkdir -p "$state_dir"
  {
    echo "ZOOKEEPER_PID=$pid"
    echo "ZOOKEEPER_PORT=$port"
    echo "ZOOKEEPER_START_TIME=$(start_time_of "$pid")"
    echo "ZOOKEEPER_DIR=$dir"
  } >"$state_file.new"
  mv "$state_file.new" "$state_file"
  echo "ZOOKEEPER_PORT=$port"
  echo started
}

stop() {
  if ! recorded_alive; then
    [[ -n "${ZOOKEEPER_DIR:-}" ]] && rm -rf "$ZOOKEEPER_DIR"
    rm -f "$state_file"
    return 0
  fi
  kill -TERM "$ZOOKEEPER_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 10)) killed=0
  while [[ "$(start_time_of "$ZOOKEEPER_PID" || true)" == "$ZOOKEEPER_START_TIME" ]]; do
    if ((SECONDS >= deadline)); then
      ((killed == 0)) || die "pid $ZOOKEEPER_PID survived SIGKILL for 5 s"
      log "pid $ZOOKEEPER_PID ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$ZOOKEEPER_PID" 2>/dev/null || true
      killed=1 deadline=$((SECONDS + 5))
    fi
    sleep 0.05
  done
  [[ -n "$ZOOKEEPER_DIR" ]] && rm -rf "$ZOOKEEPER_DIR"
  rm -f "$state_file"
  echo stopped
}

mkdir -p "$state_dir"
exec 9>"$lock_file"
flock -w 60 9 || die "another zookeeper.sh holds $lock_file"
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) recorded_alive && serving "$ZOOKEEPER_PORT" && echo "ZOOKEEPER_PORT=$ZOOKEEPER_PORT" ;;
  *) die "usage: $0 start|stop|status" ;;
esac
