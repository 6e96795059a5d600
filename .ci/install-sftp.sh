#!/usr/bin/env bash
# Installs what the SFTP interop tests (crates/kopia-notify/tests/storage_sftp.rs) need to run
# their own sshd on loopback: Debian's openssh-server and openssh-client (sshd, ssh-keygen),
# openssl (`openssl passwd` for the password-login server's private shadow line) and
# util-linux/mount (unshare, mount --bind). The system's sshd is never started or configured:
# the tests start their own with a config in a temp dir. sshd's privilege separation directory
# /run/sshd (systemd makes it at boot, a container may not) is created when missing.
# Idempotent; Debian 12; apt through sudo when not root.
# Prints the directory holding sshd as its last line (put it on PATH).
set -euo pipefail

APT_PACKAGES=(openssh-server openssh-client openssl util-linux mount)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
sudo=()
if ((EUID != 0)); then
  sudo=(sudo)
fi
if ((${#missing[@]} > 0)); then
  echo "Installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  # policy-rc.d 101: do not start the sshd the package ships.
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
  "${sudo[@]}" mkdir -p /run/sshd
  "${sudo[@]}" chmod 0755 /run/sshd
fi
if [[ ! -x /usr/sbin/sshd ]]; then
  echo "/usr/sbin/sshd not found after installing openssh-server" >&2
  exit 1
fi
echo /usr/sbin
