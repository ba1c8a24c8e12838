#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/apt-packages.txt (idempotent, quiet).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t pkgs < <(grep -vE '^\s*(#|$)' "$here/apt-packages.txt")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# make test runs the tests with cargo-nextest (each test in its own process); rustup does not
# bring it, so build it from crates.io once when it is missing.
command -v cargo >/dev/null || { echo "install-deps: cargo not found: install Rust with rustup (and put ~/.cargo/bin on PATH)" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest (cargo install --locked, once)"
  cargo install --locked --quiet cargo-nextest
fi
