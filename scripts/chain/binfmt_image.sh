# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase binfmt_image: the binfmt installer image (mbx setup --qemu-from image)
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_binfmt_image.

BINFMT_ARCHS=(aarch64 arm)   # the qemu-user-static interpreters the image carries

binfmt_stamp() { # what the installer image is built from
  local q
  for q in "${BINFMT_ARCHS[@]}"; do stat -c '%n %s %Y' "/usr/bin/qemu-$q-static"; done
  sha256sum "$CHAIN_SCRIPTS/binfmt.Dockerfile" "$CHAIN_SCRIPTS/binfmt-install" | cut -d' ' -f1
}

phase_binfmt_image() {
  local stamp=$CHAIN_DIR/images/binfmt.stamp want
  want=$(binfmt_stamp)
  if [[ $want == "$(cat "$stamp" 2>/dev/null)" ]] && registry_manifest "$BINFMT_REF" >/dev/null; then
    NOTE="($BINFMT_REF present)"
    return 0
  fi
  local ctx=$CHAIN_DIR/images/binfmt q
  rm -rf "$ctx"
  mkdir -p "$ctx/qemu"
  for q in "${BINFMT_ARCHS[@]}"; do cp "/usr/bin/qemu-$q-static" "$ctx/qemu/qemu-$q"; done
  cp "$CHAIN_SCRIPTS/binfmt-install" "$ctx/binfmt-install"
  cp "$CHAIN_SCRIPTS/binfmt.Dockerfile" "$ctx/Dockerfile"
  log "building $BINFMT_REF for linux/amd64"
  q "$DOCKER" buildx build --builder default --progress=plain \
    --platform linux/amd64 --provenance=false \
    -t "$BINFMT_REF" --push "$ctx" || die "docker buildx build of $BINFMT_REF failed"
  registry_manifest "$BINFMT_REF" >/dev/null || die "$BINFMT_REF not in the registry after the push"
  mkdir -p "$CHAIN_DIR/images"
  printf '%s\n' "$want" >"$stamp"
  NOTE="built and pushed $BINFMT_REF (qemu ${BINFMT_ARCHS[*]} from qemu-user-static)"
}
