#!/usr/bin/env bash
# Installs Kopia v0.23.1, the reference implementation the interop tests judge our reader and
# writer against, into Go's bin directory. Does nothing when a kopia of that exact version is
# already on PATH or in that directory. Prints the directory holding the binary as its last line.
set -euo pipefail

KOPIA_MODULE=github.com/kopia/kopia
KOPIA_VERSION=v0.23.1

gobin_dir="$(go env GOBIN)"
if [[ -z $gobin_dir ]]; then
  gopath="$(go env GOPATH)"
  gobin_dir="${gopath%%:*}/bin"
fi

version_of() { "$1" --version 2>/dev/null | awk '{ print $1; exit }' || true; }

for candidate in "$(command -v kopia || true)" "$gobin_dir/kopia"; do
  if [[ -n $candidate && -x $candidate && "$(version_of "$candidate")" == "$KOPIA_VERSION" ]]; then
    echo "kopia $KOPIA_VERSION already installed at $candidate" >&2
    dirname "$candidate"
    exit 0
  fi
done

echo "Installing kopia $KOPIA_VERSION into $gobin_dir" >&2
mkdir -p "$gobin_dir"

# The pinned module from the Go module proxy: its directory and the commit its tag names
# (recorded as Kopia's build info, as release builds do).
module_json="$(go mod download -json "$KOPIA_MODULE@$KOPIA_VERSION")"
module_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$module_json" | head -n 1)"
commit="$(sed -n 's/^[[:space:]]*"Hash": "\(.*\)",\{0,1\}$/\1/p' <<<"$module_json" | head -n 1)"
ldflags="-X $KOPIA_MODULE/repo.BuildVersion=$KOPIA_VERSION -X $KOPIA_MODULE/repo.BuildInfo=$commit"

if ! GOBIN="$gobin_dir" go install -trimpath -ldflags "$ldflags" "$KOPIA_MODULE@$KOPIA_VERSION"; then
  # `go install pkg@version` first reads the module's version list (@v/list) for its
  # deprecation check, and a proxy that refuses that endpoint fails the install although it
  # serves the pinned version itself. Build that same pinned source, downloaded above from
  # the same proxy, directly.
  echo "go install failed; building $KOPIA_MODULE@$KOPIA_VERSION from $module_dir" >&2
  (cd "$module_dir" && go build -trimpath -ldflags "$ldflags" -o "$gobin_dir/kopia" .)
fi

installed="$(version_of "$gobin_dir/kopia")"
if [[ $installed != "$KOPIA_VERSION" ]]; then
  echo "installed kopia reports '$installed', expected $KOPIA_VERSION" >&2
  exit 1
fi
echo "$gobin_dir"
