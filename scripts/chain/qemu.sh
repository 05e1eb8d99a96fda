# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase qemu: binfmt_misc mounted, qemu-aarch64 and qemu-arm enabled with the F flag (re-checked every run)
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_qemu.

binfmt_ok() { # binfmt_ok NAME: handler registered, enabled, flags contain F
  local f=/proc/sys/fs/binfmt_misc/$1
  [[ -r $f ]] && grep -qx enabled "$f" && grep -Eq '^flags: *[A-Z]*F' "$f"
}

binfmt_desc() { if [[ -r $1 ]]; then tr '\n' ' ' <"$1"; else echo absent; fi; }

phase_qemu() {
  local bm=/proc/sys/fs/binfmt_misc did=()
  if [[ ! -e $bm/register ]]; then
    q mount -t binfmt_misc binfmt_misc "$bm"
    did+=("mounted binfmt_misc")
  fi
  local e f
  for e in qemu-aarch64 qemu-arm; do
    binfmt_ok "$e" && continue
    f=$bm/$e
    log "repairing binfmt handler $e ($(binfmt_desc "$f"))"
    if [[ -e $f ]]; then
      if grep -Eq '^flags: *[A-Z]*F' "$f"; then
        echo 1 >"$f" # registered with F but disabled
      else
        echo -1 >"$f" # registered without F: drop, re-register below
      fi
    fi
    if ! binfmt_ok "$e"; then
      q update-binfmts --enable "$e" || true
    fi
    if ! binfmt_ok "$e"; then
      [[ -e $f ]] && echo -1 >"$f"
      q update-binfmts --import "$e" || true
      q update-binfmts --enable "$e" || true
    fi
    binfmt_ok "$e" || die "binfmt handler $e not enabled with flag F: $(binfmt_desc "$f")"
    did+=("re-enabled $e")
  done
  local flags
  flags=$(sed -n 's/^flags: *//p' "$bm/qemu-aarch64")
  if ((${#did[@]})); then NOTE="${did[*]} (qemu-aarch64 flags $flags)"; else NOTE="(qemu-aarch64, qemu-arm enabled, flags $flags)"; fi
}
