# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase config: the mbx config files and the env files the tests source:
#   $CHAIN_DIR/env        common settings, then the lane MBX_CHAIN_LANE names (default: the default lane)
#   $CHAIN_DIR/mbx.toml   the default lane's mbx config (tests use it when MBX_CONFIG is unset)
#   $LANE_DIR/env, mbx.toml   the chosen lane's (a non-default lane's env sets DOCKER_CONFIG)
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_config.

mbx_toml() { # mbx_toml LANE
  cat <<EOF
# written by scripts/chain-up: the local chain's values for mbx ($1 lane)
[builder]
buildkit-image = "$(lane_buildkit_ref "$1")"
buildkitd-config = "$CHAIN_DIR/buildkitd.toml"

[qemu]
image = "$BINFMT_REF"
EOF
}

phase_config() {
  mkdir -p "$LANE_DIR"
  mbx_toml "$CHAIN_DEFAULT_LANE" | write_if_changed "$CHAIN_DIR/mbx.toml"
  mbx_toml "$CHAIN_LANE" | write_if_changed "$LANE_DIR/mbx.toml"
  {
    echo "# written by scripts/chain-up: the $CHAIN_LANE lane (source $CHAIN_DIR/env with MBX_CHAIN_LANE=$CHAIN_LANE)"
    echo "export MBX_CHAIN_LANE=$CHAIN_LANE"
    echo "export MBX_CONFIG=$LANE_DIR/mbx.toml"
    if [[ $CHAIN_LANE != "$CHAIN_DEFAULT_LANE" ]]; then
      echo "# buildx ${LANE_BUILDX[$CHAIN_LANE]} from $LANE_DIR/cli-plugins (cliPluginsExtraDirs in this docker config)"
      echo "export DOCKER_CONFIG=$LANE_DIR/docker"
      echo "# its own default builder: buildx's container names are global in dockerd"
      echo "export MBX_BUILDER=ci-builder-$CHAIN_LANE"
    fi
  } | write_if_changed "$LANE_DIR/env"
  write_if_changed "$CHAIN_DIR/env" <<EOF
# written by scripts/chain-up: source it to point mbx and its tests at the local chain
export MBX_CHAIN_DIR=$CHAIN_DIR
export MBX_CONFIG=$CHAIN_DIR/mbx.toml
export MBX_QEMU_IMAGE=$BINFMT_REF
export ACT_DISABLE_VERSION_CHECK=1
export MBX_TEST_REGISTRY_USER=$REG_USER
export MBX_TEST_REGISTRY_PASSWORD=$REG_PASS
# MBX_CHAIN_LANE=current|compat picks the buildx + BuildKit pair (default: $CHAIN_DEFAULT_LANE);
# another lane than the default must have been brought up: MBX_CHAIN_LANE=LANE scripts/chain-up
if [ "\${MBX_CHAIN_LANE:-$CHAIN_DEFAULT_LANE}" != $CHAIN_DEFAULT_LANE ]; then
  if [ -r "$CHAIN_DIR/lanes/\$MBX_CHAIN_LANE/env" ]; then
    . "$CHAIN_DIR/lanes/\$MBX_CHAIN_LANE/env"
  else
    echo "mbx chain: no lane '\$MBX_CHAIN_LANE' here: run MBX_CHAIN_LANE=\$MBX_CHAIN_LANE scripts/chain-up" >&2
    false
  fi
fi
EOF
  NOTE="($CHAIN_LANE lane: $LANE_DIR/mbx.toml, $LANE_DIR/env; $CHAIN_DIR/mbx.toml, $CHAIN_DIR/env)"
}
