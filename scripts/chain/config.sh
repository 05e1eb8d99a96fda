# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase config: the mbx config file and the env file the tests source
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_config.

phase_config() {
  write_if_changed "$CHAIN_DIR/mbx.toml" <<EOF
# written by scripts/chain-up: the local chain's values for mbx
[builder]
buildkit-image = "$BUILDKIT_REF"
buildkitd-config = "$CHAIN_DIR/buildkitd.toml"
EOF
  write_if_changed "$CHAIN_DIR/env" <<EOF
# written by scripts/chain-up: source it to point mbx and its tests at the local chain
export MBX_CHAIN_DIR=$CHAIN_DIR
export MBX_CONFIG=$CHAIN_DIR/mbx.toml
export MBX_QEMU_IMAGE=$BINFMT_REF
export ACT_DISABLE_VERSION_CHECK=1
export MBX_TEST_REGISTRY_USER=$REG_USER
export MBX_TEST_REGISTRY_PASSWORD=$REG_PASS
EOF
  NOTE="($CHAIN_DIR/mbx.toml, $CHAIN_DIR/env)"
}
