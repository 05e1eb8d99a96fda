# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase base_image: the two-platform busybox base image in the loopback registry
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_base_image.

busybox_rootfs() { # extract busybox-static for amd64 and arm64 into $CHAIN_DIR/images/busybox
  local ctx=$CHAIN_DIR/images/busybox d=$CHAIN_DIR/apt-multiarch a
  [[ -x $ctx/rootfs-amd64/bin/busybox && -x $ctx/rootfs-arm64/bin/busybox ]] && return 0
  apt_alt apt-multiarch
  ALT+=(-o APT::Architecture=amd64 -o APT::Architectures::=amd64 -o APT::Architectures::=arm64)
  write_if_changed "$d/sources.list" <<EOF
deb [arch=amd64,arm64 signed-by=$KEYRING] $MIRROR bookworm main
EOF
  if ! compgen -G "$d/debs/busybox-static_*_amd64.deb" >/dev/null || ! compgen -G "$d/debs/busybox-static_*_arm64.deb" >/dev/null; then
    log "fetching busybox-static for amd64, arm64"
    q apt-get "${ALT[@]}" -q update
    (cd "$d/debs" && q apt-get "${ALT[@]}" -q download busybox-static:amd64 busybox-static:arm64)
  fi
  for a in amd64 arm64; do
    rm -rf "$ctx/rootfs-$a"
    mkdir -p "$ctx/rootfs-$a"
    q dpkg -x "$(compgen -G "$d/debs/busybox-static_*_$a.deb" | head -n1)" "$ctx/rootfs-$a"
    # only the binary matters; drop docs
    rm -rf "$ctx/rootfs-$a/usr/share"
  done
  file "$ctx/rootfs-arm64/bin/busybox" | grep -q 'ARM aarch64' || die "rootfs-arm64/bin/busybox is not an aarch64 binary"
}

index_has_platforms() { # stdin: manifest JSON; true when linux/amd64 and linux/arm64 are there
  jq -e '[.manifests[]?.platform | select(.os == "linux") | .architecture] as $a
         | ($a | index("amd64")) != null and ($a | index("arm64")) != null' >/dev/null 2>&1
}

phase_base_image() {
  local m
  if m=$(registry_manifest "$BUSYBOX_REF") && index_has_platforms <<<"$m"; then
    NOTE="($BUSYBOX_REF present: linux/amd64, linux/arm64)"
    return 0
  fi
  busybox_rootfs
  local ctx=$CHAIN_DIR/images/busybox
  cp "$CHAIN_SCRIPTS/busybox.Dockerfile" "$ctx/Dockerfile"
  log "building $BUSYBOX_REF for linux/amd64,linux/arm64"
  q "$DOCKER" buildx build --builder default --progress=plain \
    --platform linux/amd64,linux/arm64 --provenance=false \
    -t "$BUSYBOX_REF" --push "$ctx" || die "docker buildx build of $BUSYBOX_REF failed"
  m=$(registry_manifest "$BUSYBOX_REF") || die "$BUSYBOX_REF is not in the registry after the push"
  index_has_platforms <<<"$m" || die "$BUSYBOX_REF in the registry lacks linux/amd64 or linux/arm64: $m"
  NOTE="built and pushed $BUSYBOX_REF ($(jq -r '[.manifests[].platform | "\(.os)/\(.architecture)"] | join(", ")' <<<"$m"))"
}
