# shellcheck shell=bash disable=SC2034
# Shared by scripts/chain-up and scripts/chain-down: where the local chain keeps
# its state and how its daemons are tracked. Source it; it defines no side effects
# beyond variables and functions.

CHAIN_DIR=${MBX_CHAIN_DIR:-/var/lib/mbx-chain}
CHAIN_LOGS=$CHAIN_DIR/logs
CHAIN_RUN=$CHAIN_DIR/run            # pid files
CHAIN_REG=127.0.0.1:5000            # plain registry (no auth)
CHAIN_REG_AUTH=127.0.0.1:5001       # htpasswd registry
DOCKER=/usr/bin/docker              # trixie docker-cli 26, not /usr/local/bin/docker

# pid_alive NAME: the pid in $CHAIN_RUN/NAME.pid is a live process of the
# expected program (a pid file left from before a reboot may name another one).
pid_alive() {
  local f=$CHAIN_RUN/$1.pid pid comm want
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  case $1 in
    registry-*) want=docker-registry ;;
    *) want=$1 ;;
  esac
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [[ $comm == "$want" ]]
}

# stop_pid NAME [SECONDS]: TERM the process of a pid file, wait, then KILL.
stop_pid() {
  local name=$1 wait=${2:-20} f=$CHAIN_RUN/$1.pid pid i
  [[ -s $f ]] || return 0
  pid=$(<"$f")
  if pid_alive "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "chain: $name (pid $pid) did not stop in ${wait}s; sending KILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "chain: stopped $name (pid $pid)"
  fi
  rm -f "$f"
}
