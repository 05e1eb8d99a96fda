# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase packages: bookworm packages, then trixie's docker.io, docker-cli, containerd, docker-buildx
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_packages.

BOOKWORM_PKGS=(runc tini qemu-user-static binfmt-support docker-registry apache2-utils
  skopeo jq file busybox-static iptables ca-certificates python3-venv curl
  debian-archive-keyring nodejs)
TRIXIE_PKGS=(docker.io docker-cli containerd docker-buildx)

phase_packages() {
  local -a missing
  local did=()
  mapfile -t missing < <(dpkg_missing "${BOOKWORM_PKGS[@]}")
  if ((${#missing[@]})); then
    did+=("bookworm: ${missing[*]}")
    with_policy_rc_d bookworm_install "${missing[@]}"
  fi

  local dv bv
  dv=$(pkg_version docker.io)
  bv=$(pkg_version docker-buildx)
  if [[ $dv != 26.* || $bv != 0.13.* || -n $(dpkg_missing docker-cli containerd) ]]; then
    did+=("trixie: ${TRIXIE_PKGS[*]}")
    trixie_install
    dv=$(pkg_version docker.io)
    bv=$(pkg_version docker-buildx)
    [[ $dv == 26.* && $bv == 0.13.* ]] || die "after install: docker.io '$dv', docker-buildx '$bv' (want 26.x, 0.13.x)"
  fi
  # trixie's runc/tini need a newer libc: bookworm's must stay
  [[ $(pkg_version runc) == *deb12* || $(pkg_version runc) == 1.1.* ]] || log "warning: runc is $(pkg_version runc), not bookworm's"

  if ((${#did[@]})); then NOTE="installed (${did[*]})"; else NOTE="(all present: docker.io $dv, buildx $bv)"; fi
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
