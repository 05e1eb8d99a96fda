# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase check: the chain answers as the tests expect (--probe: a throwaway builder)
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_check.

phase_check() {
  local bx
  # docker as found on PATH (what mbx and the tests call) must have buildx
  # (with the lane's env: a non-default lane's buildx comes through DOCKER_CONFIG)
  local want=${LANE_BUILDX[$CHAIN_LANE]}
  bx=$(lane_env docker buildx version 2>&1) ||
    die "'docker buildx version' via PATH ($(command -v docker)) fails: $bx; /usr/bin/docker buildx: $(lane_env "$DOCKER" buildx version 2>&1 | head -n1)"
  [[ $bx =~ (^|[[:space:]])v?${want//./\\.} ]] || die "'docker buildx version' ($CHAIN_LANE lane) is not buildx $want: $bx"
  registry_manifest "$BUILDKIT_REF" >/dev/null || die "$BUILDKIT_REF is not in the registry"
  registry_manifest "$BUSYBOX_REF" >/dev/null || die "$BUSYBOX_REF is not in the registry"
  binfmt_ok qemu-aarch64 || die "binfmt handler qemu-aarch64 lost its enabled/F state"
  NOTE="($CHAIN_LANE lane: $(command -v docker) runs buildx $(awk '{print $2}' <<<"$bx"); both images in the registry; qemu-aarch64 F)"
  stale_builder
  ((PROBE)) && probe_builder
  return 0
}

# stale_builder: the lane's default builder (ci-builder, or ci-builder-LANE)
# must run the lane's BuildKit. After the lane's image changed (a switch of
# the default lane, a new compile) buildx would keep booting the old
# container, and the docker-container driver would reuse the old image from
# dockerd's store: remove both; the next `mbx setup` makes them anew.
stale_builder() {
  local name=ci-builder want have
  [[ $CHAIN_LANE == "$CHAIN_DEFAULT_LANE" ]] || name+=-$CHAIN_LANE
  local container=buildx_buildkit_${name}0
  "$DOCKER" container inspect "$container" >/dev/null 2>&1 || return 0
  want=$("$BUILDKIT_BIN/buildkitd" --version 2>/dev/null | awk '{print $3}')
  have=$("$DOCKER" exec "$container" buildkitd --version 2>/dev/null | awk '{print $3}') || have=""
  [[ -n $want && $have == "$want" ]] && return 0
  log "builder $name runs BuildKit ${have:-?}, the $CHAIN_LANE lane's is $want: removing it and the cached image"
  lane_env "$DOCKER" buildx rm --force "$name" >/dev/null 2>&1 || true
  "$DOCKER" rm -f -v "$container" >/dev/null 2>&1 || true
  "$DOCKER" volume rm "${container}_state" >/dev/null 2>&1 || true
  "$DOCKER" image rm -f "$BUILDKIT_REF" >/dev/null 2>&1 || true
  NOTE+="; removed stale builder $name (BuildKit ${have:-?}, want $want)"
}

probe_builder() {
  local name=chain-probe out
  [[ $CHAIN_LANE == compat ]] || name+=-$CHAIN_LANE
  log "probe: docker-container builder $name from $BUILDKIT_REF"
  lane_env "$DOCKER" buildx rm "$name" >/dev/null 2>&1 || true
  q lane_env "$DOCKER" buildx create --name "$name" --driver docker-container \
    --driver-opt "image=$BUILDKIT_REF,network=host" \
    --buildkitd-config "$CHAIN_DIR/buildkitd.toml" --bootstrap ||
    { lane_env "$DOCKER" buildx rm "$name" >/dev/null 2>&1 || true; die "probe builder $name failed to boot"; }
  # the control API, as mbx asks it (buildctl is in the image)
  out=$("$DOCKER" exec "buildx_buildkit_${name}0" buildctl debug workers -v 2>&1) || true
  echo "$out" >>"$PHASE_LOG"
  q lane_env "$DOCKER" buildx rm "$name" || true
  grep -q '^Platforms:.*linux/arm64' <<<"$out" || die "probe builder's worker lacks linux/arm64: $out"
  NOTE+="; probe: $(grep -m1 '^BuildKit:' <<<"$out" | tr -s '\t ' ' '), $(grep -m1 '^Platforms:' <<<"$out" | tr -s '\t ' ' ')"
}
