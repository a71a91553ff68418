#!/usr/bin/env bash
# Installs the Debian packages Atelier runs and tests with, only those missing:
# redis-server (job store and broker), chromium (browser tests; never a downloaded browser),
# python3-venv (for make's .venv), nginx and envsubst (tests/deploy/test_proxy.py runs the compose proxy's
# nginx site in front of a test stack in a prefix of its own; Debian also enables its default site on port
# 80 where systemd runs: `systemctl disable --now nginx` if unwanted) and a Docker Compose CLI
# (tests/deploy checks the compose files with it; Debian's docker-compose 1.29, without an engine:
# make docker-test installs docker.io).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
# Debian's python3 makes virtualenvs only with python3-venv (ensurepip) installed.
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v envsubst >/dev/null || missing+=(gettext-base)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
