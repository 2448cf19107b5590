#!/usr/bin/env bash
# Install everything the project needs on a Debian machine: apt packages, a venv, the package.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t packages < <(grep -v '^\s*#' .ci/apt-packages.txt | grep -v '^\s*$')
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install: apt packages ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
    .venv/bin/pip install -q uv
fi
VIRTUAL_ENV=.venv .venv/bin/uv pip install -q -e '.[test]'
echo "install: done ($(.venv/bin/python --version), $(.venv/bin/airflow version 2>/dev/null | tail -1 | sed 's/^/airflow /'))"
