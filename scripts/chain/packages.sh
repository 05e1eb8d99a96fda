# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase packages: bookworm packages, then trixie's docker.io, docker-cli, containerd;
# the default lane's docker-buildx as the system plugin, the chosen lane's in its own plugin dir
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_packages.

BOOKWORM_PKGS=(runc tini qemu-user-static binfmt-support docker-registry apache2-utils
  skopeo jq file busybox-static iptables ca-certificates python3-venv curl
  debian-archive-keyring nodejs)
TRIXIE_PKGS=(docker.io docker-cli containerd)
# the system plugin is the default lane's: trixie's deb for compat, sid's for current
[[ $CHAIN_DEFAULT_LANE == compat ]] && TRIXIE_PKGS+=(docker-buildx)

phase_packages() {
  local -a missing
  local did=()
  mapfile -t missing < <(dpkg_missing "${BOOKWORM_PKGS[@]}")
  if ((${#missing[@]})); then
    did+=("bookworm: ${missing[*]}")
    with_policy_rc_d bookworm_install "${missing[@]}"
  fi

  local dv bv want_bv=${LANE_BUILDX[$CHAIN_DEFAULT_LANE]}
  dv=$(pkg_version docker.io)
  bv=$(pkg_version docker-buildx)
  if [[ $dv != 26.* || $bv != "$want_bv"+* || -n $(dpkg_missing docker-cli containerd) ]]; then
    did+=("trixie: ${TRIXIE_PKGS[*]}")
    trixie_install
    if [[ $CHAIN_DEFAULT_LANE != compat ]]; then
      did+=("${LANE_BUILDX_SUITE[$CHAIN_DEFAULT_LANE]}: docker-buildx")
      with_policy_rc_d q "${APT[@]}" install --no-install-recommends "$(lane_buildx_deb "$CHAIN_DEFAULT_LANE")" ||
        die "apt-get install of the $CHAIN_DEFAULT_LANE lane's docker-buildx failed"
    fi
    dv=$(pkg_version docker.io)
    bv=$(pkg_version docker-buildx)
    [[ $dv == 26.* && $bv == "$want_bv"+* ]] || die "after install: docker.io '$dv', docker-buildx '$bv' (want 26.x, $want_bv)"
  fi
  if [[ $CHAIN_LANE != "$CHAIN_DEFAULT_LANE" ]]; then
    if lane_plugin; then did+=("$CHAIN_LANE lane: buildx plugin in $LANE_DIR/cli-plugins"); fi
  fi
  # trixie's runc/tini need a newer libc: bookworm's must stay
  [[ $(pkg_version runc) == *deb12* || $(pkg_version runc) == 1.1.* ]] || log "warning: runc is $(pkg_version runc), not bookworm's"

  local lane=""
  [[ $CHAIN_LANE != "$CHAIN_DEFAULT_LANE" ]] && lane=", $CHAIN_LANE lane buildx $(cat "$LANE_DIR/cli-plugins/docker-buildx.deb")"
  if ((${#did[@]})); then NOTE="installed (${did[*]})$lane"; else NOTE="(all present: docker.io $dv, buildx $bv$lane)"; fi
}

# Debian's maintainer scripts must not start services (docker-registry's default
# config listens on all interfaces): policy-rc.d says no while we install.
with_policy_rc_d() {
  local p=/usr/sbin/policy-rc.d made=0
  if [[ ! -e $p ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$p"
    chmod 0755 "$p"
    made=1
  fi
  local rc=0
  "$@" || rc=$?
  ((made)) && rm -f "$p"
  return "$rc"
}

bookworm_install() {
  log "apt-get install $*"
  if ! q "${APT[@]}" install --no-install-recommends "$@"; then
    log "install failed; apt-get update and retry"
    q "${APT[@]}" update || log "apt-get update reported errors (continuing)"
    q "${APT[@]}" install --no-install-recommends "$@"
  fi
}

trixie_install() {
  apt_alt apt-trixie
  local d=$CHAIN_DIR/apt-trixie
  write_if_changed "$d/sources.list" <<EOF
deb [signed-by=$KEYRING] $MIRROR trixie main
deb [signed-by=$KEYRING] http://deb.debian.org/debian-security trixie-security main
EOF
  local p have=1
  for p in "${TRIXIE_PKGS[@]}"; do
    compgen -G "$d/debs/${p}_*.deb" >/dev/null || have=0
  done
  if ((!have)); then
    log "fetching trixie debs: ${TRIXIE_PKGS[*]}"
    q apt-get "${ALT[@]}" -q update
    rm -f "$d"/debs/*.deb
    (cd "$d/debs" && q apt-get "${ALT[@]}" -q download "${TRIXIE_PKGS[@]}")
  fi
  log "installing trixie debs (keeping bookworm runc, tini)"
  local debs=()
  for p in "${TRIXIE_PKGS[@]}"; do debs+=("$d/debs/${p}_"*.deb); done
  with_policy_rc_d q "${APT[@]}" install --no-install-recommends "${debs[@]}" ||
    die "apt-get install of the trixie debs failed"
}

# lane_buildx_deb LANE: the path of the lane's docker-buildx deb, kept under the
# chain directory (sid moves daily); downloads the pinned version when missing
# and fails clearly when its suite no longer has it.
lane_buildx_deb() {
  local lane=$1 suite=${LANE_BUILDX_SUITE[$1]} pin=${LANE_BUILDX[$1]} sub d f v
  case $suite in
    trixie) sub=apt-trixie ;;
    *) sub=lanes/$lane/apt ;;
  esac
  d=$CHAIN_DIR/$sub
  f=$(compgen -G "$d/debs/docker-buildx_${pin}+*_amd64.deb" | sort -V | tail -n1 || true)
  if [[ -n $f ]]; then echo "$f"; return 0; fi
  apt_alt "$sub"
  if [[ $suite != trixie ]]; then
    write_if_changed "$d/sources.list" <<EOF
deb [signed-by=$KEYRING] $MIRROR $suite main
deb-src [signed-by=$KEYRING] $MIRROR $suite main
EOF
  fi
  log "fetching $suite docker-buildx $pin"
  q apt-get "${ALT[@]}" -q update
  v=$(apt-cache "${ALT[@]}" madison docker-buildx | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -F "$pin+" | sort -V | tail -n1 || true)
  [[ -n $v ]] || die "$suite no longer has docker-buildx $pin (it has: $(apt-cache "${ALT[@]}" madison docker-buildx | awk -F'|' '{print $2}' | xargs)); update LANE_BUILDX in scripts/chain/common.sh"
  if id _apt >/dev/null 2>&1; then chown _apt "$d/debs"; fi
  (cd "$d/debs" && q apt-get "${ALT[@]}" -q download "docker-buildx=$v") || die "apt-get download docker-buildx=$v failed"
  f=$(compgen -G "$d/debs/docker-buildx_${pin}+*_amd64.deb" | sort -V | tail -n1 || true)
  [[ -n $f ]] || die "docker-buildx=$v downloaded, yet no $d/debs/docker-buildx_${pin}+*_amd64.deb"
  echo "$f"
}

# lane_plugin: the chosen (non-default) lane's buildx in $LANE_DIR/cli-plugins and
# a docker config that selects it (DOCKER_CONFIG=$LANE_DIR/docker, set by the
# lane's env file). True when it changed something.
lane_plugin() {
  local deb plugin=$LANE_DIR/cli-plugins/docker-buildx changed=1 x
  deb=$(lane_buildx_deb "$CHAIN_LANE")
  mkdir -p "$LANE_DIR/cli-plugins" "$LANE_DIR/docker"
  if [[ -x $plugin && $(cat "$plugin.deb" 2>/dev/null) == "${deb##*/}" ]]; then
    changed=0
  else
    log "$CHAIN_LANE lane: buildx plugin from ${deb##*/}"
    x=$(mktemp -d "$LANE_DIR/x.XXXXXX")
    q dpkg -x "$deb" "$x"
    [[ -x $x/usr/libexec/docker/cli-plugins/docker-buildx ]] || die "${deb##*/} holds no usr/libexec/docker/cli-plugins/docker-buildx"
    mv -f "$x/usr/libexec/docker/cli-plugins/docker-buildx" "$plugin"
    rm -rf "$x"
    echo "${deb##*/}" >"$plugin.deb"
  fi
  jq -n --arg d "$LANE_DIR/cli-plugins" '{cliPluginsExtraDirs: [$d]}' | write_if_changed "$LANE_DIR/docker/config.json"
  ((changed))
}
