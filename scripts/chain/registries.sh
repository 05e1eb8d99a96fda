# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase registries: loopback registries: 127.0.0.1:5000 open, 127.0.0.1:5001 htpasswd
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_registries.

registry_config() { # registry_config PORT [AUTH]
  local port=$1 auth=${2:-}
  cat <<EOF
# written by scripts/chain-up; loopback only
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $CHAIN_DIR/registry-$port
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  if [[ -n $auth ]]; then
    cat <<EOF
auth:
  htpasswd:
    realm: mbx-chain
    path: $CHAIN_DIR/htpasswd
EOF
  fi
}

reg_status() { "${CURL[@]}" --max-time 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v2/" 2>/dev/null || true; }

phase_registries() {
  local user=$REG_USER pass=$REG_PASS did=()
  write_if_changed "$CHAIN_DIR/registry-auth.env" <<EOF
MBX_TEST_REGISTRY_USER=$user
MBX_TEST_REGISTRY_PASSWORD=$pass
EOF
  if [[ ! -s $CHAIN_DIR/htpasswd ]] || ! htpasswd -vb "$CHAIN_DIR/htpasswd" "$user" "$pass" >/dev/null 2>&1; then
    htpasswd -Bbn "$user" "$pass" >"$CHAIN_DIR/htpasswd.tmp" 2>>"$PHASE_LOG"
    mv -f "$CHAIN_DIR/htpasswd.tmp" "$CHAIN_DIR/htpasswd"
    did+=("wrote htpasswd")
  fi
  local port want auth code
  for port in 5000 5001; do
    auth=""; want=200
    [[ $port == 5001 ]] && { auth=1; want=401; }
    mkdir -p "$CHAIN_DIR/registry-$port"
    registry_config "$port" $auth | write_if_changed "$CHAIN_DIR/registry-$port.yml"
    code=$(reg_status "$port")
    if [[ $code == "$want" ]]; then
      continue
    fi
    [[ $code == 000 ]] || die "127.0.0.1:$port answers /v2/ with HTTP $code (want $want): something else listens there"
    pid_alive "registry-$port" && stop_pid "registry-$port" 5 >>"$PHASE_LOG" 2>&1
    local rlog=$CHAIN_LOGS/registry-$port.log
    echo "==== $(date -Is) chain-up starts registry on 127.0.0.1:$port" >>"$rlog"
    setsid /usr/bin/docker-registry serve "$CHAIN_DIR/registry-$port.yml" >>"$rlog" 2>&1 </dev/null &
    echo $! >"$CHAIN_RUN/registry-$port.pid"
    local i
    for ((i = 0; i < 100; i++)); do # 20 s
      code=$(reg_status "$port")
      [[ $code == "$want" ]] && break
      pid_alive "registry-$port" || die "registry on 127.0.0.1:$port exited during start" "$rlog"
      sleep 0.2
    done
    [[ $code == "$want" ]] || die "registry on 127.0.0.1:$port: /v2/ gives HTTP $code, want $want" "$rlog"
    did+=("started 127.0.0.1:$port")
  done
  # the authenticated one must accept our user
  code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -u "$user:$pass" http://127.0.0.1:5001/v2/ || true)
  [[ $code == 200 ]] || die "registry 127.0.0.1:5001 refuses $user (HTTP $code)" "$CHAIN_LOGS/registry-5001.log"
  if ((${#did[@]})); then NOTE="${did[*]}"; else NOTE="(5000 open, 5001 htpasswd: both up)"; fi
}
