# shellcheck shell=bash disable=SC2034
# Shared by scripts/chain-up, its phases (scripts/chain/*.sh) and scripts/chain-down:
# where the local chain keeps its state, the references it publishes, how its
# daemons are tracked, and the helpers every phase uses. Source it; it defines
# no side effects beyond variables and functions. The facts behind the recipe:
# scripts/chain/README.md.

CHAIN_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # this directory
CHAIN_DIR=${MBX_CHAIN_DIR:-/var/lib/mbx-chain}
CHAIN_LOGS=$CHAIN_DIR/logs
CHAIN_RUN=$CHAIN_DIR/run            # pid files
CHAIN_REG=127.0.0.1:5000            # plain registry (no auth)
CHAIN_REG_AUTH=127.0.0.1:5001       # htpasswd registry
DOCKER=/usr/bin/docker              # trixie docker-cli 26, not /usr/local/bin/docker

APT=(apt-get -y -q -o DPkg::Lock::Timeout=300)
CURL=(curl --noproxy '*' -sS --max-time 10)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MIRROR=http://deb.debian.org/debian

BUSYBOX_REF=$CHAIN_REG/mbx/busybox:latest
BINFMT_REF=$CHAIN_REG/mbx/binfmt:local   # binfmt installer image (mbx setup --qemu-from image)

# ---- lanes: which buildx + BuildKit pair the chain serves (scripts/chain/README.md, "Lanes")
#   current  buildx 0.29 (sid docker-buildx) + BuildKit v0.25 (sid golang-github-docker-docker-dev)
#   compat   buildx 0.13 (trixie docker-buildx) + BuildKit v0.13 (trixie docker.io source)
# MBX_CHAIN_LANE picks one. The default lane owns the system buildx plugin
# (/usr/libexec/docker/cli-plugins) and the tag 127.0.0.1:5000/moby/buildkit:local;
# the other lane's buildx is chosen through DOCKER_CONFIG (its env file sets it)
# and its image is tagged by version.
# The default lane (the versions users run; compat runs the e2e and action tests again):
CHAIN_DEFAULT_LANE=current
CHAIN_LANE=${MBX_CHAIN_LANE:-$CHAIN_DEFAULT_LANE}
case $CHAIN_LANE in
  current | compat) ;;
  *) echo "chain: MBX_CHAIN_LANE must be current or compat, not '$CHAIN_LANE'" >&2; exit 2 ;;
esac
declare -A LANE_BUILDX=([current]=0.29.1 [compat]=0.13.1)      # docker-buildx upstream version (pinned)
declare -A LANE_BUILDX_SUITE=([current]=sid [compat]=trixie)
declare -A LANE_BUILDKIT_TAG=([current]=v0.25 [compat]=v0.13)  # the tag when not the default lane
declare -A LANE_BUILDKIT_BIN=([current]=$CHAIN_DIR/lanes/current/buildkit/bin [compat]=$CHAIN_DIR/buildkit/bin)
declare -A LANE_BUILDKIT_COMPILE=([current]=buildkit-compile-sid [compat]=buildkit-compile)
lane_buildkit_ref() { # lane_buildkit_ref LANE: the lane's BuildKit image
  if [[ $1 == "$CHAIN_DEFAULT_LANE" ]]; then echo "$CHAIN_REG/moby/buildkit:local"; else echo "$CHAIN_REG/moby/buildkit:${LANE_BUILDKIT_TAG[$1]}"; fi
}
LANE_DIR=$CHAIN_DIR/lanes/$CHAIN_LANE       # the lane's plugin, docker config, env, mbx.toml
BUILDKIT_REF=$(lane_buildkit_ref "$CHAIN_LANE")
BUILDKIT_BIN=${LANE_BUILDKIT_BIN[$CHAIN_LANE]}
lane_env() { # lane_env CMD...: run CMD as the lane's env file would (its buildx via DOCKER_CONFIG)
  if [[ $CHAIN_LANE == "$CHAIN_DEFAULT_LANE" ]]; then "$@"; else DOCKER_CONFIG=$LANE_DIR/docker "$@"; fi
}
REG_USER=mbx               # the 127.0.0.1:5001 registry's htpasswd user
REG_PASS=mbx-secret

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

# ---------------------------------------------------------------- chain-up helpers
# Set by run_phase: the phase running, its log, the note printed after its time.
PHASE=setup
PHASE_LOG=$CHAIN_LOGS/chain-up.log
NOTE=""

elapsed() { # elapsed START -> seconds with one decimal
  local s=${1/./} e=${EPOCHREALTIME/./}
  local us=$((e - s))
  printf '%d.%d' $((us / 1000000)) $((us % 1000000 / 100000))
}

on_err() { # on_err RC LINE COMMAND [FILE]: the ERR trap of chain-up
  local rc=$1 line=$2 cmd=$3 file=${4:-}
  trap - ERR
  {
    echo "chain-up: FAILED in phase $PHASE (exit $rc at ${file:+${file#"$CHAIN_SCRIPTS/"}:}line $line: $cmd)"
    echo "chain-up: phase log: $PHASE_LOG"
    if [[ -s $PHASE_LOG ]]; then
      echo "---- last lines of $PHASE_LOG"
      tail -n 25 "$PHASE_LOG" | sed 's/^/  | /'
    fi
  } >&2
  exit 1
}
die() { # die MESSAGE [LOGFILE]: fail the current phase with a message
  trap - ERR
  {
    echo "chain-up: FAILED in phase $PHASE: $1"
    local log=${2:-$PHASE_LOG}
    echo "chain-up: log: $log"
    if [[ -s $log ]]; then
      echo "---- last lines of $log"
      tail -n 25 "$log" | sed 's/^/  | /'
    fi
  } >&2
  exit 1
}

log() { echo "chain-up: [$PHASE] $*" >&2; }
# q CMD...: run with output to the phase log (shown on failure)
q() { echo "+ $*" >>"$PHASE_LOG"; "$@" >>"$PHASE_LOG" 2>&1; }

# write_if_changed PATH [MODE] < content: keep mtime stable on warm runs
write_if_changed() {
  local path=$1 mode=${2:-0644} tmp
  tmp=$(mktemp "$path.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$path"
  fi
}

run_phase() {
  local name=$1 t0=$EPOCHREALTIME
  PHASE=$name
  PHASE_LOG=$CHAIN_LOGS/chain-up-$name.log
  NOTE=""
  : >"$PHASE_LOG"
  "phase_$name"
  printf 'chain-up: phase %-14s %5ss  %s\n' "$name" "$(elapsed "$t0")" "$NOTE"
}

# dpkg_missing PKG...: print the packages not installed
dpkg_missing() {
  local -A ok=()
  local p
  while read -r p st; do
    [[ $st == ii ]] && ok[$p]=1
  done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true)
  for p in "$@"; do [[ -n ${ok[$p]:-} ]] || echo "$p"; done
}

pkg_version() { { dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null || true; } | awk '$1=="ii"{print $2}'; }

# a separate apt configuration under $CHAIN_DIR/DIR (the system's sources stay untouched)
# apt_alt DIR: sets ALT=(apt options)
apt_alt() {
  local d=$CHAIN_DIR/$1
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/debs"
  ALT=(-o "Dir::Etc::SourceList=$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache"
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null)
}

registry_manifest() { # registry_manifest REF -> raw manifest/index JSON on stdout
  local ref=$1 host repo tag
  host=${ref%%/*}
  repo=${ref#*/}
  tag=${repo##*:}
  repo=${repo%:*}
  "${CURL[@]}" -f \
    -H 'Accept: application/vnd.oci.image.index.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$host/v2/$repo/manifests/$tag" 2>/dev/null
}
