# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase runner_image: a self-hosted runner's container (issue 15.16), built
# once: Debian bookworm minbase (debootstrap from the chain's mirror) with the host's
# docker CLI and buildx plugin copied in, as 127.0.0.1:5000/mbx/runner:bookworm. tests/container.rs runs
# mbx (mounted) in it with and without the Docker socket, unprivileged.
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_runner_image.
# Run on its own: MBX_CHAIN_DIR=… bash scripts/chain/runner_image.sh

runner_ref() { echo "$CHAIN_REG/mbx/runner:bookworm"; }

runner_stamp() { # what the runner image is built from
  sha256sum "$DOCKER" /usr/libexec/docker/cli-plugins/docker-buildx /etc/ssl/certs/ca-certificates.crt "${BASH_SOURCE[0]}" | cut -d' ' -f1
}

phase_runner_image() {
  local stamp=$CHAIN_DIR/images/runner.stamp want RUNNER_REF
  RUNNER_REF=$(runner_ref)
  want=$(runner_stamp)
  if [[ $want == "$(cat "$stamp" 2>/dev/null)" ]] && registry_manifest "$RUNNER_REF" >/dev/null; then
    NOTE="($RUNNER_REF present)"
    return 0
  fi
  local root=$CHAIN_DIR/images/runner/rootfs
  if [[ ! -x $root/bin/bash ]]; then
    [[ -z $(dpkg_missing debootstrap) ]] || with_policy_rc_d q "${APT[@]}" install --no-install-recommends debootstrap ||
      die "apt-get install debootstrap failed"
    rm -rf "$root"
    mkdir -p "$root"
    log "debootstrap --variant=minbase bookworm from $MIRROR"
    q debootstrap --variant=minbase --keyring="$KEYRING" bookworm "$root" "$MIRROR" ||
      die "debootstrap of bookworm failed" "$root/debootstrap/debootstrap.log"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  fi
  # The host's docker CLI and buildx plugin (both link only libc; bookworm's is enough).
  install -D -m 0755 "$DOCKER" "$root/usr/bin/docker"
  install -D -m 0755 /usr/libexec/docker/cli-plugins/docker-buildx "$root/usr/libexec/docker/cli-plugins/docker-buildx"
  # The CA bundle (Debian's ca-certificates, as the host generated it): runner images carry one.
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  # An unprivileged runner user, as actions-runner images have.
  grep -q '^runner:' "$root/etc/passwd" || echo 'runner:x:1001:1001::/home/runner:/bin/bash' >>"$root/etc/passwd"
  grep -q '^runner:' "$root/etc/group" || echo 'runner:x:1001:' >>"$root/etc/group"
  mkdir -p "$root/home/runner"
  chown 1001:1001 "$root/home/runner"
  log "importing the rootfs as $RUNNER_REF"
  tar -C "$root" -c . | q "$DOCKER" import --change 'CMD ["/bin/bash"]' - "$RUNNER_REF" ||
    die "docker import of the runner rootfs failed"
  q "$DOCKER" push "$RUNNER_REF" || die "docker push $RUNNER_REF failed"
  registry_manifest "$RUNNER_REF" >/dev/null || die "$RUNNER_REF not in the registry after the push"
  mkdir -p "$CHAIN_DIR/images"
  printf '%s\n' "$want" >"$stamp"
  NOTE="built and pushed $RUNNER_REF (bookworm minbase, docker CLI $("$DOCKER" version --format '{{.Client.Version}}' 2>/dev/null), buildx from the host)"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then # run on its own, outside chain-up
  set -Eeuo pipefail
  # shellcheck source-path=SCRIPTDIR source=common.sh
  source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"
  # shellcheck source-path=SCRIPTDIR source=packages.sh
  source "$CHAIN_SCRIPTS/packages.sh" # with_policy_rc_d
  mkdir -p "$CHAIN_LOGS"
  run_phase runner_image
fi
