#!/usr/bin/env bash
# Installs the object-store emulators the GCS and Azure interop tests start on loopback:
#   fake-gcs-server (Google Cloud Storage's JSON API) through the Go module proxy, pinned;
#   azurite (Azure Blob Storage) from npm, pinned, into a directory of its own outside the clone.
# Idempotent: does nothing for what is already installed at the pinned version. Needs Go and
# Node.js 20 (the project's toolchains); no root.
# Prints the directories holding fake-gcs-server and azurite-blob as its last line, joined with
# ':' (put it on PATH).
set -euo pipefail

FAKE_GCS_VERSION=v1.56.1
AZURITE_VERSION=3.35.0
AZURITE_DIR="${KOPIA_NOTIFIER_TOOLS:-${XDG_DATA_HOME:-$HOME/.local/share}/kopia-notifier}/azurite-$AZURITE_VERSION"

gobin="$(go env GOBIN)"
if [[ -z $gobin ]]; then
  gobin="$(go env GOPATH)/bin"
fi
# `go version -m` reads the module version a binary was built from.
installed="$(go version -m "$gobin/fake-gcs-server" 2>/dev/null | awk '$1 == "mod" {print $3}' || true)"
if [[ $installed != "$FAKE_GCS_VERSION" ]]; then
  echo "Installing fake-gcs-server@$FAKE_GCS_VERSION" >&2
  go install "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION" >&2
fi
if [[ ! -x $gobin/fake-gcs-server ]]; then
  echo "fake-gcs-server not found in $gobin" >&2
  exit 1
fi

installed="$(node -p "require('$AZURITE_DIR/node_modules/azurite/package.json').version" 2>/dev/null || true)"
if [[ $installed != "$AZURITE_VERSION" ]]; then
  echo "Installing azurite@$AZURITE_VERSION into $AZURITE_DIR" >&2
  mkdir -p "$AZURITE_DIR"
  npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION" >&2
fi
azurite_bin="$AZURITE_DIR/node_modules/.bin"
if [[ ! -x $azurite_bin/azurite-blob ]]; then
  echo "azurite-blob not found in $azurite_bin" >&2
  exit 1
fi
echo "$gobin:$azurite_bin"
