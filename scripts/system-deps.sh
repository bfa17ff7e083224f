#!/usr/bin/env bash
# Installs the Debian packages the test suite drives, only those missing.
set -euo pipefail
need=()
command -v chromium     >/dev/null || need+=(chromium)
command -v redis-server >/dev/null || need+=(redis-server)
command -v espeak-ng    >/dev/null || need+=(espeak-ng)
command -v sox          >/dev/null || need+=(sox libsox-fmt-all)
# the PostgreSQL tests start Debian's server (/usr/lib/postgresql/<version>/bin) in a temp folder
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
