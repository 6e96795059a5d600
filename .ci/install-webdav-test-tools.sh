#!/usr/bin/env bash
# Installs what the WebDAV and rclone backend tests need beside rclone itself (which
# .ci/install-storage-servers.sh installs): the openssl binary, which makes the self-signed
# certificate the TLS WebDAV server presents, and util-linux's setpriv, through which the
# rclone backend ties its rclone process to ours. Idempotent; Debian 12; apt through sudo
# when not root. Prints the directory holding openssl as its last line (put it on PATH).
set -euo pipefail

APT_PACKAGES=(openssl util-linux)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} > 0)); then
  echo "Installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo=()
  if ((EUID != 0)); then
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
dirname "$(command -v openssl)"
