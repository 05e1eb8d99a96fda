# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase dockerd: dockerd with the containerd image store, started by setsid (no systemd)
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_dockerd.

docker_driver_type() { # prints the driver-type when dockerd answers
  timeout 10 "$DOCKER" info --format '{{range .DriverStatus}}{{index . 0}}={{index . 1}};{{end}}' 2>/dev/null |
    tr ';' '\n' | sed -n 's/^driver-type=//p'
}

phase_dockerd() {
  local f=/etc/docker/daemon.json cur new
  mkdir -p /etc/docker
  if [[ -s $f ]]; then
    cur=$(<"$f")
    new=$(jq '.features["containerd-snapshotter"] = true' "$f") || die "$f is not valid JSON"
  else
    cur=""
    new='{"features":{"containerd-snapshotter":true}}'
  fi
  local changed=0
  if [[ -z $cur ]] || ! jq -e '.features["containerd-snapshotter"] == true' "$f" >/dev/null 2>&1; then
    printf '%s\n' "$new" >"$f"
    changed=1
  fi

  local dt
  dt=$(docker_driver_type) || true
  if [[ -n $dt ]]; then
    if [[ $dt == io.containerd.snapshotter.v1 ]]; then
      NOTE="(already running, containerd snapshotter)"
      return 0
    fi
    if pid_alive dockerd; then
      log "dockerd runs without the containerd snapshotter (driver-type '$dt'); restarting it"
      stop_pid dockerd 30 >>"$PHASE_LOG" 2>&1
    else
      die "a dockerd not started by chain-up runs without the containerd snapshotter (driver-type '$dt'); stop it and re-run"
    fi
  fi

  local dlog=$CHAIN_LOGS/dockerd.log
  # a stale pid file / socket from a dead daemon would block the start
  if ! pid_alive dockerd; then
    rm -f /var/run/docker.pid
  fi
  log "starting dockerd (log $dlog)"
  echo "==== $(date -Is) chain-up starts dockerd" >>"$dlog"
  setsid /usr/sbin/dockerd >>"$dlog" 2>&1 </dev/null &
  echo $! >"$CHAIN_RUN/dockerd.pid"
  local i
  for ((i = 0; i < 300; i++)); do # 60 s
    dt=$(docker_driver_type) && [[ -n $dt ]] && break
    pid_alive dockerd || die "dockerd exited during start" "$dlog"
    sleep 0.2
  done
  [[ -n ${dt:-} ]] || die "dockerd did not answer 'docker info' within 60s" "$dlog"
  [[ $dt == io.containerd.snapshotter.v1 ]] ||
    die "dockerd runs without the containerd snapshotter (driver-type '$dt'; $f: $(tr -d '\n' <"$f"))" "$dlog"
  NOTE="started (pid $(<"$CHAIN_RUN/dockerd.pid"), containerd snapshotter)"
  ((changed)) && NOTE+=", wrote $f"
  return 0
}
