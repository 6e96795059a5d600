#!/usr/bin/env bash
# Installs the storage servers the storage-backend interop tests start on loopback:
#   moto_server (S3, with versioning and object lock) from PyPI, pinned;
#   from Debian: rclone (the WebDAV server and the rclone backend), openssh-server and
#   openssh-client (sshd and ssh-keygen for the SFTP tests' own sshd), openssl (test
#   certificates, `openssl passwd`), util-linux and mount (setpriv, unshare, mount --bind).
# The system's sshd is never started or configured; sshd's privilege separation directory
# /run/sshd (systemd makes it at boot, a container may not) is created when missing.
# Idempotent: does nothing for what is already installed. Debian 12; apt through sudo when
# not root.
# Prints the directories holding moto_server and sshd as its last line (put it on PATH).
set -euo pipefail

MOTO_VERSION=5.2.5

# Debian packages. openssh-server must not start a system sshd: the tests run their own.
APT_PACKAGES=(rclone openssh-server openssh-client openssl util-linux mount)
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
  # policy-rc.d 101: do not start the services the packages ship.
  policy=/usr/sbin/policy-rc.d
  created_policy=false
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null &&
      "${sudo[@]}" chmod +x "$policy" && created_policy=true
  fi
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if $created_policy; then "${sudo[@]}" rm -f "$policy"; fi
fi

if [[ ! -d /run/sshd ]]; then
  if ((EUID != 0)); then sudo mkdir -p -m 0755 /run/sshd; else mkdir -p -m 0755 /run/sshd; fi
fi
if [[ ! -x /usr/sbin/sshd ]]; then
  echo "/usr/sbin/sshd not found after installing openssh-server" >&2
  exit 1
fi

# moto's server mode, in the Python the machine has.
python=python3
installed="$("$python" -m pip show moto 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [[ $installed != "$MOTO_VERSION" ]] || ! "$python" -c 'import flask, flask_cors' 2>/dev/null; then
  echo "Installing moto[server]==$MOTO_VERSION" >&2
  "$python" -m pip install --quiet "moto[server]==$MOTO_VERSION" >&2
fi
moto_bin="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if [[ ! -x $moto_bin/moto_server ]]; then
  echo "moto_server not found in $moto_bin" >&2
  exit 1
fi
echo "$moto_bin:/usr/sbin"
