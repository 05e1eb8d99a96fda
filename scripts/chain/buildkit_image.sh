# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase buildkit_image: the lane's BuildKit image for buildx's docker-container driver
# (compat: v0.13 from buildkit-compile; current: v0.25 from buildkit-compile-sid)
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_buildkit_image.

buildkit_binaries() {
  [[ -x $BUILDKIT_BIN/buildkitd && -x $BUILDKIT_BIN/buildctl ]]
}

buildkit_stamp() { # what the image was built from: binaries (size, mtime) and Dockerfile
  stat -c '%n %s %Y' "$BUILDKIT_BIN/buildkitd" "$BUILDKIT_BIN/buildctl"
  sha256sum "$CHAIN_SCRIPTS/buildkit.Dockerfile" | cut -d' ' -f1
}

phase_buildkit_image() {
  write_if_changed "$CHAIN_DIR/buildkitd.toml" <<'EOF'
# written by scripts/chain-up: BuildKit talks plain http to the loopback registries
[registry."127.0.0.1:5000"]
  http = true

[registry."127.0.0.1:5001"]
  http = true
EOF
  # Skip when the tag is in the registry and was built from the binaries now on
  # disk (or there are none: nothing newer to build from).
  # one stamp per lane and tag (compat's :local keeps the name it had before lanes)
  local stamp=$CHAIN_DIR/images/buildkit-$CHAIN_LANE-${BUILDKIT_REF##*:}.stamp want_stamp=""
  [[ $CHAIN_LANE-${BUILDKIT_REF##*:} == compat-local ]] && stamp=$CHAIN_DIR/images/buildkit.stamp
  buildkit_binaries && want_stamp=$(buildkit_stamp)
  if registry_manifest "$BUILDKIT_REF" >/dev/null &&
    { [[ -z $want_stamp ]] || [[ $want_stamp == "$(cat "$stamp" 2>/dev/null)" ]]; }; then
    NOTE="($BUILDKIT_REF present)"
    return 0
  fi

  local name=${LANE_BUILDKIT_COMPILE[$CHAIN_LANE]} t0=$EPOCHREALTIME
  local compile=$CHAIN_SCRIPTS/$name clog=$CHAIN_LOGS/buildkit-compile.log
  [[ $CHAIN_LANE == compat ]] || clog=$CHAIN_LOGS/buildkit-compile-$CHAIN_LANE.log
  if ! buildkit_binaries; then
    if [[ -x $compile ]]; then
      log "compiling BuildKit (scripts/chain/$name; several minutes; log $clog)"
      MBX_CHAIN_DIR=$CHAIN_DIR "$compile" >>"$clog" 2>&1 || die "scripts/chain/$name failed" "$clog"
    else
      die "$compile is missing and $BUILDKIT_BIN/{buildkitd,buildctl} do not exist"
    fi
  fi
  buildkit_binaries || die "$name left no $BUILDKIT_BIN/buildkitd and buildctl" "$clog"
  local compile_s
  compile_s=$(elapsed "$t0")

  busybox_rootfs
  local ctx=$CHAIN_DIR/images/buildkit root
  [[ $CHAIN_LANE == compat ]] || ctx+=-$CHAIN_LANE
  rm -rf "$ctx"
  root=$ctx/rootfs
  mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/etc/buildkit" "$root/var/lib/buildkit" "$root/tmp" "$root/run"
  cp -a "$CHAIN_DIR/images/busybox/rootfs-amd64/." "$root/"
  cp "$BUILDKIT_BIN/buildkitd" "$BUILDKIT_BIN/buildctl" "$root/usr/bin/"
  # bookworm's runc and every shared object it loads (libseccomp, libc, the loader)
  cp /usr/sbin/runc "$root/usr/sbin/runc"
  local lib
  while read -r lib; do
    [[ -n $lib ]] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done < <(ldd /usr/sbin/runc | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}')
  # the loader is also reached through /lib64 on amd64
  [[ -e $root/lib64/ld-linux-x86-64.so.2 ]] || die "runc's dynamic loader not copied (ldd: $(ldd /usr/sbin/runc | tr '\n' ' '))"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  cp "$CHAIN_SCRIPTS/buildkit.Dockerfile" "$ctx/Dockerfile"
  log "building $BUILDKIT_REF for linux/amd64"
  q "$DOCKER" buildx build --builder default --progress=plain \
    --platform linux/amd64 --provenance=false \
    -t "$BUILDKIT_REF" --push "$ctx" || die "docker buildx build of $BUILDKIT_REF failed"
  registry_manifest "$BUILDKIT_REF" >/dev/null || die "$BUILDKIT_REF not in the registry after the push"
  buildkit_stamp >"$stamp"
  NOTE="built and pushed $BUILDKIT_REF ($("$BUILDKIT_BIN/buildkitd" --version 2>/dev/null | awk '{print $3}'); binaries ready after ${compile_s}s)"
}
