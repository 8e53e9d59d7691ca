#!/usr/bin/env bash
# Make the project virtual environment: PYTHON -m venv VENV, never pip into the system Python.
#
# Debian and Ubuntu ship python3 without the venv module's pip (PEP 668 also refuses pip
# into the system Python); when creating the venv fails for that reason, install the
# distribution's venv package with apt (root only) and try once more.
# Usage: ensure-venv.sh PYTHON VENV
set -euo pipefail

readonly PYTHON=${1:?usage: ensure-venv.sh PYTHON VENV}
readonly VENV=${2:?usage: ensure-venv.sh PYTHON VENV}

say() { printf 'ensure-venv: %s\n' "$*"; }
die() { printf 'ensure-venv: error: %s\n' "$*" >&2; exit 1; }

make_venv() {
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" >/dev/null 2>&1 && "$VENV/bin/python" -m pip --version >/dev/null 2>&1
}

command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$("$PYTHON" --version 2>&1) is too old; imgforge needs Python 3.11 or newer"

if ! make_venv; then
    command -v apt-get >/dev/null || die "'$PYTHON -m venv' failed; install your system's venv package"
    [[ $(id -u) -eq 0 ]] || die "'$PYTHON -m venv' failed; as root: apt-get install python3-venv"
    minor=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    say "installing python3-venv (the venv module's pip is missing)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$minor-venv" python3-venv >/dev/null
    make_venv || die "'$PYTHON -m venv $VENV' still fails after installing python3-venv"
fi
say "created $VENV ($("$VENV/bin/python" --version))"
