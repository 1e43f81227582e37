#!/usr/bin/env bash
# indical set-up and entry point for a fresh Debian 12 machine (or a Raspberry Pi OS of the same
# release). Installs what is missing, then runs what you asked for:
#   ./bootstrap.sh demo [OPTIONS]   run `indical demo` on the built-in simulated observatory
#   ./bootstrap.sh test [PYTEST ARGS]   run the test suite
#   ./bootstrap.sh install          only install
# Safe to run again: it installs only what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(indi-bin libdbus-1-dev libglib2.0-dev pkg-config python3-venv python3-dev gcc siril xvfb xauth postgresql)
VENV=.venv

say() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }
die() { printf '\033[1;31mbootstrap:\033[0m %s\n' "$*" >&2; exit 1; }

install_debian_packages() {
  command -v dpkg-query >/dev/null || die "this script needs a Debian-based system (dpkg-query not found)"
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    elif command -v sudo >/dev/null && [ -t 0 ]; then
      sudo=(sudo)  # sudo will ask for the password
    else
      die "these Debian packages are missing and I am not root and can't use sudo: ${missing[*]}
  Ask an administrator to run:  apt-get update && apt-get install -y ${missing[*]}
  then run this script again."
    fi
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_python_env() {
  local py=${PYTHON:-python3}
  command -v "$py" >/dev/null || die "$py not found; install python3 (3.11 or newer)"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "indical needs Python 3.11 or newer; $py is $("$py" --version 2>&1)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment in $VENV/"
    "$py" -m venv "$VENV"
  fi
  # Reinstall only when the package description or the C kernel's sources changed since the
  # last install (an editable install compiles the kernel in place, once).
  local stamp="$VENV/.indical-installed" want
  want=$(cat pyproject.toml setup.py indical/calib/combine/*.c | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
      || ! "$VENV/bin/python" -c 'import indical.calib.combine._native' 2>/dev/null; then
    say "installing indical and its Python dependencies into $VENV/ (first time: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[test]'
    echo "$want" > "$stamp"
  fi
}

what=${1:-install}
[ $# -gt 0 ] && shift
case "$what" in
  install|demo|test) ;;
  -h|--help|help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown command '$what'; use demo, test or install" ;;
esac
install_debian_packages
install_python_env
case "$what" in
  install) say "installed: $VENV/bin/indical" ;;
  demo) exec "$VENV/bin/indical" demo "$@" ;;
  test) exec "$VENV/bin/python" -m pytest "$@" ;;
esac
