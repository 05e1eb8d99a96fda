# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase check: the chain answers as the tests expect (--probe: a throwaway builder)
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_check.

phase_check() {
  local bx
  # docker as found on PATH (what mbx and the tests call) must have buildx
  bx=$(docker buildx version 2>&1) ||
    die "'docker buildx version' via PATH ($(command -v docker)) fails: $bx; /usr/bin/docker buildx: $("$DOCKER" buildx version 2>&1 | head -n1)"
  [[ $bx =~ (^|[[:space:]])v?0\.13\. ]] || die "'docker buildx version' is not buildx 0.13: $bx"
  registry_manifest "$BUILDKIT_REF" >/dev/null || die "$BUILDKIT_REF is not in the registry"
  registry_manifest "$BUSYBOX_REF" >/dev/null || die "$BUSYBOX_REF is not in the registry"
  binfmt_ok qemu-aarch64 || die "binfmt handler qemu-aarch64 lost its enabled/F state"
  NOTE="($(command -v docker) runs buildx $(awk '{print $2}' <<<"$bx"); both images in the registry; qemu-aarch64 F)"
  ((PROBE)) && probe_builder
  return 0
}

probe_builder() {
  local name=chain-probe out
  log "probe: docker-container builder $name from $BUILDKIT_REF"
  "$DOCKER" buildx rm "$name" >/dev/null 2>&1 || true
  q "$DOCKER" buildx create --name "$name" --driver docker-container \
    --driver-opt "image=$BUILDKIT_REF,network=host" \
    --buildkitd-config "$CHAIN_DIR/buildkitd.toml" --bootstrap ||
    { "$DOCKER" buildx rm "$name" >/dev/null 2>&1 || true; die "probe builder $name failed to boot"; }
  # the control API, as mbx asks it (buildctl is in the image)
  out=$("$DOCKER" exec "buildx_buildkit_${name}0" buildctl debug workers -v 2>&1) || true
  echo "$out" >>"$PHASE_LOG"
  q "$DOCKER" buildx rm "$name" || true
  grep -q '^Platforms:.*linux/arm64' <<<"$out" || die "probe builder's worker lacks linux/arm64: $out"
  NOTE+="; probe: $(grep -m1 '^BuildKit:' <<<"$out" | tr -s '\t ' ' '), $(grep -m1 '^Platforms:' <<<"$out" | tr -s '\t ' ' ')"
}
