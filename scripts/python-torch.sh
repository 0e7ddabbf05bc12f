#!/usr/bin/env bash
# Installs Debian's python3-torch (CPU) for the Python package's tests. Idempotent: does
# nothing when /usr/bin/python3 already imports torch. Used by .ci/run. Needs root (or sudo).
set -euo pipefail
if /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  echo "python-torch: present (torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'))"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
echo "python-torch: installed (torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'))"
