#!/usr/bin/env bash
# Throw-away ZooKeeper servers for tests. `start` installs Debian's zookeeper package when
# missing, starts a standalone server on a free 127.0.0.1 port with fast test timings, waits until
# it serves, and records it in a state file; `stop` stops exactly the process recorded there.
# Instances are named, so a fault test can halt its own server without disturbing the one other
# test files share.
#
#   bash scripts/zookeeper.sh start   # prints ZOOKEEPER_PORT=... and "started" or "reused";
#                                     # restarts a halted server on its port with its data
#   bash scripts/zookeeper.sh halt    # stops the server process but keeps data dir, port and state
#   bash scripts/zookeeper.sh stop    # stops the recorded server (no-op when none), removes its data
#   bash scripts/zookeeper.sh status  # exit 0 when the recorded server answers ("halted": exit 1)
#   bash scripts/zookeeper.sh zkcli deleteall /farcall/x/providers   # one zkCli command, as an
#                                     # operator with full rights; exit status is the command's
#
# Environment: ZOOKEEPER_NAME (instance, [a-z0-9-]+, default "default": state in
# .tmp/zookeeper.env; any other name: .tmp/zookeeper-<name>.env), ZOOKEEPER_PORT (first port tried
# for a new server, default 21810), ZOOKEEPER_READY_S (readiness deadline in seconds, default 30),
# ZOOKEEPER_CLI_TIMEOUT_S (zkcli deadline, default 30). A ZooKeeper this script did not start is
# never touched.
#
# Halting is an outage as clients see it: the server's sessions and ephemeral nodes are in its
# data dir, so after `start` it restores them and clients that reconnect within their session
# timeout (counted again from the restart) keep their sessions. Debian's 3.8.0 also shows a real
# restart's flaw: a connection accepted while it loads its data can hit a NullPointerException in
# its close path and is then never answered nor closed, so clients need a connect timeout of their own.
#
# Every server accepts the digest identity super:<secret> (zookeeper.DigestAuthenticationProvider.
# superDigest), the secret random per server and kept in its data dir, so that `zkcli` can delete
# nodes whatever their ACL, as an operator with admin rights would. It listens on 127.0.0.1 only.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="$root/.tmp"
name="${ZOOKEEPER_NAME:-default}"
[[ "$name" =~ ^[a-z0-9-]{1,64}$ ]] || { echo "zookeeper.sh: ZOOKEEPER_NAME must match [a-z0-9-]{1,64}, got '$name'" >&2; exit 2; }
if [[ "$name" == default ]]; then
  state_file="$state_dir/zookeeper.env"
  lock_file="$state_dir/zookeeper.lock"
else
  state_file="$state_dir/zookeeper-$name.env"
  lock_file="$state_dir/zookeeper-$name.lock"
fi
# Held by whoever picks a port and launches a server, so two instances never pick the same port.
ports_lock_file="$state_dir/zookeeper-ports.lock"
jar=/usr/share/java/zookeeper.jar
first_port="${ZOOKEEPER_PORT:-21810}"
ready_s="${ZOOKEEPER_READY_S:-30}"
cli_timeout_s="${ZOOKEEPER_CLI_TIMEOUT_S:-30}"

log() { echo "zookeeper.sh [$name]: $*" >&2; }
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

# Ports recorded by any instance's state file, halted ones included: a halted server owns its port.
recorded_ports() {
  local file
  for file in "$state_dir"/zookeeper.env "$state_dir"/zookeeper-*.env; do
    [[ -f "$file" ]] && sed -n 's/^ZOOKEEPER_PORT=\([0-9][0-9]*\)$/\1/p' "$file"
  done
  return 0
}

# Loads the state file into ZOOKEEPER_* variables; returns 1 when it is missing, halted, or its
# process is gone (the variables stay loaded for the caller either way).
recorded_alive() {
  ZOOKEEPER_PID="" ZOOKEEPER_PORT="" ZOOKEEPER_START_TIME="" ZOOKEEPER_DIR="" ZOOKEEPER_HALTED=""
  [[ -f "$state_file" ]] || return 1
  # Parsed, not sourced: only the known keys, only digits or a path under /tmp.
  while IFS='=' read -r key value; do
    case "$key" in
      ZOOKEEPER_PID | ZOOKEEPER_PORT | ZOOKEEPER_START_TIME) [[ "$value" =~ ^[0-9]+$ ]] && printf -v "$key" %s "$value" ;;
      ZOOKEEPER_DIR) [[ "$value" =~ ^/tmp/farcall-zookeeper\.[A-Za-z0-9]+$ ]] && ZOOKEEPER_DIR="$value" ;;
      ZOOKEEPER_HALTED) [[ "$value" == 1 ]] && ZOOKEEPER_HALTED=1 ;;
    esac
  done <"$state_file"
  [[ -z "$ZOOKEEPER_HALTED" && -n "$ZOOKEEPER_PID" && -n "$ZOOKEEPER_START_TIME" ]] || return 1
  [[ "$(start_time_of "$ZOOKEEPER_PID" || true)" == "$ZOOKEEPER_START_TIME" ]]
}

# A usable halted record: its data dir and config are still there.
recorded_halted() {
  [[ "$ZOOKEEPER_HALTED" == 1 && -n "$ZOOKEEPER_PORT" && -n "$ZOOKEEPER_DIR" && -f "$ZOOKEEPER_DIR/zoo.cfg" ]]
}

write_state() { # pid port dir [halted]
  {
    if [[ -n "$1" ]]; then
      echo "ZOOKEEPER_PID=$1"
      echo "ZOOKEEPER_START_TIME=$(start_time_of "$1")"
    fi
    echo "ZOOKEEPER_PORT=$2"
    echo "ZOOKEEPER_DIR=$3"
    [[ -z "${4:-}" ]] || echo "ZOOKEEPER_HALTED=1"
  } >"$state_file.new"
  mv "$state_file.new" "$state_file"
}

install_if_missing() {
  [[ -f "$jar" ]] && return 0
  command -v java >/dev/null || log "no java on PATH: the zookeeper package will pull in default-jre"
  bash "$root/scripts/apt-install.sh" zookeeper "$jar" || die "installing zookeeper failed"
}

classpath() {
  local cp=$jar
  [[ -f "/usr/share/java/$1" ]] && cp="$cp:/usr/share/java/$1"
  echo "$cp"
}

# Writes a new server's data dir and config into $1 for port $2.
prepare_dir() {
  local dir=$1 port=$2 secret digest
  mkdir "$dir/data"
  cat >"$dir/zoo.cfg" <<CFG
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
CFG
  secret="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
  # DigestAuthenticationProvider prints "super:<secret>->super:<base64 sha1>".
  digest="$(java -cp "$(classpath slf4j-nop.jar)" org.apache.zookeeper.server.auth.DigestAuthenticationProvider "super:$secret" 2>/dev/null)"
  digest="${digest##*->}"
  [[ "$digest" =~ ^super:[A-Za-z0-9+/=]+$ ]] || die "could not compute the super digest (got '$digest')"
  (umask 077 && echo "$secret" >"$dir/super.secret" && echo "$digest" >"$dir/super.digest")
}

# Starts the server of data dir $1 on port $2 and waits until it serves; sets `pid`.
launch() {
  local dir=$1 port=$2
  rm -f "$dir/pid"
  # setsid detaches it from the caller's process group; the pid file is written by the process
  # itself before it execs java, so the recorded pid is exactly the server's. It must not inherit
  # the locks' descriptors 8 and 9, or it would hold them for its whole life.
  setsid bash -c 'echo $$ >"$1/pid"; exec java -Xms16m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dzookeeper.admin.enableServer=false -Dzookeeper.DigestAuthenticationProvider.superDigest="$(cat "$1/super.digest")" \
      -cp "$2" org.apache.zookeeper.server.ZooKeeperServerMain "$1/zoo.cfg"' \
    _ "$dir" "$(classpath slf4j-simple.jar)" >>"$dir/zookeeper.log" 2>&1 </dev/null 8>&- 9>&- &

  local deadline=$((SECONDS + ready_s))
  pid=""
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
}

lock_ports() {
  exec 8>"$ports_lock_file"
  flock -w $((ready_s + 60)) 8 || die "another zookeeper.sh holds $ports_lock_file"
}

start() {
  if recorded_alive; then
    serving "$ZOOKEEPER_PORT" || die "recorded ZooKeeper (pid $ZOOKEEPER_PID) is alive but not serving on $ZOOKEEPER_PORT"
    echo "ZOOKEEPER_PORT=$ZOOKEEPER_PORT"
    echo reused
    return 0
  fi
  if recorded_halted; then
    lock_ports
    if port_in_use "$ZOOKEEPER_PORT"; then
      die "cannot restart the halted server: port $ZOOKEEPER_PORT is taken by another process (data kept in $ZOOKEEPER_DIR; 'stop' forgets it)"
    fi
    launch "$ZOOKEEPER_DIR" "$ZOOKEEPER_PORT"
    write_state "$pid" "$ZOOKEEPER_PORT" "$ZOOKEEPER_DIR"
    echo "ZOOKEEPER_PORT=$ZOOKEEPER_PORT"
    echo started
    return 0
  fi
  # A recorded server that died (or a halted one whose data is gone): forget it and its data.
  [[ -n "$ZOOKEEPER_DIR" ]] && rm -rf "$ZOOKEEPER_DIR"
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
  dir="$(mktemp -d /tmp/farcall-zookeeper.XXXXXXXX)"
  prepare_dir "$dir" "$port"
  launch "$dir" "$port"
  write_state "$pid" "$port" "$dir"
  echo "ZOOKEEPER_PORT=$port"
  echo started
}

# Ends the recorded process (SIGTERM, SIGKILL after 10 s); the caller checked recorded_alive.
kill_recorded() {
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
}

halt() {
  if ! recorded_alive; then
    recorded_halted && { echo halted; return 0; }
    die "no running ZooKeeper recorded in $state_file to halt"
  fi
  kill_recorded
  write_state "" "$ZOOKEEPER_PORT" "$ZOOKEEPER_DIR" halted
  echo halted
}

stop() {
  if recorded_alive; then
    kill_recorded
  elif [[ -z "$ZOOKEEPER_HALTED" ]]; then
    [[ -n "$ZOOKEEPER_DIR" ]] && rm -rf "$ZOOKEEPER_DIR"
    rm -f "$state_file"
    return 0
  fi
  [[ -n "$ZOOKEEPER_DIR" ]] && rm -rf "$ZOOKEEPER_DIR"
  rm -f "$state_file"
  echo stopped
}

# One zkCli command against the recorded server, authenticated as super. ZooKeeperMain runs the
# lines it reads from stdin (no jline here) and exits with the status of the last one, so
# `addauth` goes first and the command's own status is the exit status. Connection noise is dropped.
zkcli() {
  (($# > 0)) || die "usage: zkcli <command> [args...], e.g. zkcli deleteall /farcall/svc/providers"
  recorded_alive && serving "$ZOOKEEPER_PORT" || die "no serving ZooKeeper recorded in $state_file"
  local line="" arg
  for arg in "$@"; do
    [[ "$arg" != *$'\n'* && "$arg" != *'"'* ]] || die "zkcli arguments cannot hold newlines or double quotes"
    [[ "$arg" =~ [[:space:]] || -z "$arg" ]] && arg="\"$arg\""
    line+="${line:+ }$arg"
  done
  local secret status
  secret="$(cat "$ZOOKEEPER_DIR/super.secret")"
  # Not under `set -e` here: the command's failure is reported through its exit status.
  set +e
  printf 'addauth digest super:%s\n%s\n' "$secret" "$line" |
    timeout "$cli_timeout_s" java -Xms8m -Xmx64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$(classpath slf4j-nop.jar)" \
      org.apache.zookeeper.ZooKeeperMain -server "127.0.0.1:$ZOOKEEPER_PORT" -timeout 10000 9>&- |
    grep -v -x -E 'Connecting to .*|Welcome to ZooKeeper!|JLine support is (disabled|enabled)|WATCHER::|WatchedEvent state:SyncConnected type:None path:null|'
  status=${PIPESTATUS[1]}
  set -e
  ((status != 124)) || die "zkcli $line: no answer within $cli_timeout_s s"
  return "$status"
}

mkdir -p "$state_dir"
exec 9>"$lock_file"
flock -w 60 9 || die "another zookeeper.sh holds $lock_file"
case "${1:-}" in
  start) start ;;
  halt) halt ;;
  stop) stop ;;
  status)
    if recorded_alive && serving "$ZOOKEEPER_PORT"; then echo "ZOOKEEPER_PORT=$ZOOKEEPER_PORT"
    elif recorded_halted; then echo "ZOOKEEPER_PORT=$ZOOKEEPER_PORT"; echo halted; exit 1
    else exit 1
    fi ;;
  zkcli) shift; zkcli "$@" ;;
  *) die "usage: $0 start|halt|stop|status|zkcli <command...>" ;;
esac
