#!/usr/bin/env bash
# Installs the Debian packages Atelier runs and tests with, only those missing:
# redis-server (job store and broker), chromium (browser tests; never a downloaded browser) and
# python3-venv (for make's .venv).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
# Debian's python3 makes virtualenvs only with python3-venv (ensurepip) installed.
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
