#!/bin/sh
# Re-creates each vendored crate from its pristine crates.io source plus vendor/patches/*.patch
# and compares the result with vendor/<crate>: the patch files and the vendored tree must say
# the same thing. Exits non-zero on any difference or on a patch that does not apply.
#
#   vendor/check-patches.sh             check every crate
#   vendor/check-patches.sh --keep DIR  also keep the re-created trees in DIR, each a git
#                                       repository with one commit per patch (to edit the series)
#   vendor/check-patches.sh --diff      print what vendor/<crate> has beyond the series, as a
#                                       -p1 diff inside the crate directory (the body of a new
#                                       patch file), instead of only failing
#
# The .crate files are downloaded once from static.crates.io into $POLIS_VENDOR_CACHE
# (default ~/.cache/polis-vendor) and checked against the sha256 crates.io's index lists.
set -eu

VENDOR=$(cd "$(dirname "$0")" && pwd)
CACHE=${POLIS_VENDOR_CACHE:-$HOME/.cache/polis-vendor}
KEEP=
DIFF=0
while [ $# -gt 0 ]; do
  case $1 in
    --keep) KEEP=$2; shift 2 ;;
    --diff) DIFF=1; shift ;;
    *) echo "usage: $0 [--keep DIR] [--diff]" >&2; exit 2 ;;
  esac
done

# name version sha256 (the crates.io index's `cksum` of the .crate)
CRATES="
libcontainer 0.7.0 2c28770cf8fb3acca0d168a10f5d9f8333d304af0b2ff5654029822d222d19f0
libcgroups 0.7.0 d85e8f0bca12f0d04fdd8f14858022018cd1667b4f971d6b09058fe90323e19d
pathrs 0.2.6 bd74b8fd656302d50059a07147444e46d6c2f162656271cf626e8ff3fad4cce8
"

# Files we added that are not source changes, so no patch carries them: path in the crate and
# sha256. libcontainer's and libcgroups' Cargo.toml name Apache-2.0 but their crates.io
# packages ship no license text; LICENSE is that license's text (the same file in both).
EXTRA="
libcontainer-0.7.0/LICENSE cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30
libcgroups-0.7.0/LICENSE cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30
"

for tool in patch curl sha256sum tar; do
  command -v "$tool" >/dev/null || { echo "check-patches.sh: needs $tool (apt-get install $tool)" >&2; exit 1; }
done

if [ -n "$KEEP" ]; then
  mkdir -p "$KEEP"
  WORK=$(cd "$KEEP" && pwd)
else
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$CACHE"

status=0
echo "$CRATES" | while read -r name version sum; do
  [ -n "$name" ] || continue
  crate=$name-$version
  file=$CACHE/$crate.crate
  if [ ! -f "$file" ]; then
    curl -sSfL -o "$file.tmp" "https://static.crates.io/crates/$name/$crate.crate"
    mv "$file.tmp" "$file"
  fi
  if [ "$(sha256sum "$file" | cut -d' ' -f1)" != "$sum" ]; then
    echo "$file: sha256 is not crates.io's $sum" >&2
    exit 1
  fi
  rm -rf "${WORK:?}/$crate"
  tar -xzf "$file" -C "$WORK"
  if [ -n "$KEEP" ]; then
    git -C "$WORK/$crate" init -q
    git -C "$WORK/$crate" add -A
    git -C "$WORK/$crate" -c user.name=pristine -c user.email=pristine@localhost \
      commit -q -m "$crate as published on crates.io"
  fi
  for p in "$VENDOR"/patches/[0-9][0-9][0-9]-"$name"-*.patch; do
    [ -e "$p" ] || continue
    if ! patch -p1 -s -f --no-backup-if-mismatch -d "$WORK/$crate" < "$p"; then
      echo "$(basename "$p") does not apply to $crate" >&2
      exit 1
    fi
    if [ -n "$KEEP" ]; then
      git -C "$WORK/$crate" add -A
      git -C "$WORK/$crate" -c user.name=polis -c user.email=polis@localhost \
        commit -q -m "$(basename "$p" .patch)"
    fi
  done
  echo "$EXTRA" | while read -r path esum; do
    case $path in "$crate"/*) ;; *) continue ;; esac
    if [ "$(sha256sum "$VENDOR/$path" | cut -d' ' -f1)" != "$esum" ]; then
      echo "vendor/$path is not the file listed in check-patches.sh (sha256 $esum)" >&2
      exit 1
    fi
    cp "$VENDOR/$path" "$WORK/$path"
  done
  if [ "$DIFF" = 1 ]; then
    mkdir -p "$WORK/.diff-$crate"
    ln -sfn "$WORK/$crate" "$WORK/.diff-$crate/a"
    ln -sfn "$VENDOR/$crate" "$WORK/.diff-$crate/b"
    (cd "$WORK/.diff-$crate" && diff -ruN -x .git a b) || true
  fi
  if ! diff -r "$WORK/$crate" "$VENDOR/$crate" -x .git > "$WORK/$crate.diff"; then
    echo "vendor/$crate differs from its pristine crate plus vendor/patches:" >&2
    cat "$WORK/$crate.diff" >&2
    exit 1
  fi
  echo "vendor/$crate: pristine $crate + $(ls "$VENDOR"/patches/[0-9][0-9][0-9]-"$name"-*.patch 2>/dev/null | wc -l) patches: identical"
done || status=1
exit $status
