#!/bin/sh
# The vendored crates' own unit tests (`make vendor-test`), as root on this kind of machine
# (cgroup v1 hybrid host, no systemd: the machines CI runs on).
#
# vendor/<crate> are [patch] sources of the root workspace, not members, and their
# dev-dependencies must stay out of the root Cargo.lock. So the three crates are copied into
# a workspace of their own under target/vendor-test/ws (vendor/test/Cargo.toml.in, with the
# same [patch] wiring as the root: libcontainer runs on the patched libcgroups and pathrs) and
# built there with the committed vendor/test/Cargo.lock (--locked) and target/vendor-test as
# target directory. Features as polis-runc builds them (libcontainer's defaults plus
# cgroupsv2_devices).
#
# Every test runs except the ones listed below, each with the reason it cannot run here
# (all of them fail the same way with the pristine crates.io sources). VENDOR_TEST_FULL=1
# also runs pathrs' slow exhaustive suites.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARGO=${CARGO:-cargo}
TARGET=${VENDOR_TEST_TARGET_DIR:-$ROOT/target/vendor-test}
WS=$TARGET/ws
CRATES="libcontainer-0.7.0 libcgroups-0.7.0 pathrs-0.2.6"

mkdir -p "$WS"
for c in $CRATES; do
  # cp -a keeps the mtimes, so an unchanged crate is not rebuilt
  rm -rf "${WS:?}/$c"
  cp -a "$ROOT/vendor/$c" "$WS/$c"
done
cp "$ROOT/vendor/test/Cargo.toml.in" "$WS/Cargo.toml"
cp "$ROOT/vendor/test/Cargo.lock" "$WS/Cargo.lock"

# One build of the three test binaries, then each is run with its own skips (in the crate's
# directory, as cargo runs them).
"$CARGO" test --manifest-path "$WS/Cargo.toml" --target-dir "$TARGET" --locked \
  --features libcontainer/cgroupsv2_devices --workspace --lib --no-run \
  --message-format json-render-diagnostics > "$TARGET/tests.json"

run() {
  pkg=$1
  shift
  exe=$(jq -r --arg p "$pkg" \
    'select(.reason == "compiler-artifact" and .target.name == $p and .profile.test) | .executable' \
    "$TARGET/tests.json")
  [ -x "$exe" ] || { echo "vendor-test: no test binary for $pkg" >&2; return 1; }
  dir=$(dirname "$(jq -r --arg p "$pkg" \
    'select(.reason == "compiler-artifact" and .target.name == $p and .profile.test) | .manifest_path' \
    "$TARGET/tests.json")")
  echo "vendor-test: $pkg ($*)"
  (cd "$dir" && CARGO_MANIFEST_DIR=$dir "$exe" "$@")
}

status=0

# libcgroups. Skipped:
# - systemd::dbus_native::dbus::tests::{test_dbus_connection_new, test_dbus_function_calls,
#   test_dbus_function_calls_errors}, systemd::manager::tests::{test_task_addition,
#   test_error_thrown_if_process_never_added_to_cgroup}: they talk to systemd over the system
#   D-Bus; these machines have neither (PID 1 is not systemd).
run libcgroups --exact \
  --skip systemd::dbus_native::dbus::tests::test_dbus_connection_new \
  --skip systemd::dbus_native::dbus::tests::test_dbus_function_calls \
  --skip systemd::dbus_native::dbus::tests::test_dbus_function_calls_errors \
  --skip systemd::manager::tests::test_task_addition \
  --skip systemd::manager::tests::test_error_thrown_if_process_never_added_to_cgroup \
  || status=1

# libcontainer. Skipped:
# - tty::tests::{test_setup_console, test_verify_ptmx_handle_with_real_pty}: they open
#   /dev/ptmx and require it to be on devpts; here /dev is a tmpfs with its own ptmx device
#   node (super magic 0x1021994), so the crate's devpts check refuses it.
# - utils::tests::test_userns_spec_validation: assumes a non-root caller (rootless is then
#   required and a spec without a user namespace must be refused); as root it is accepted.
run libcontainer --exact \
  --skip tty::tests::test_setup_console \
  --skip tty::tests::test_verify_ptmx_handle_with_real_pty \
  --skip utils::tests::test_userns_spec_validation \
  || status=1

# pathrs. Skipped:
# - tests::test_procfs::procfs_overmounts_new_{,opath_,openat2_}procpid1_* (9 tests, the
#   `*_pid1_nomount` cases of a ProcfsHandle opened on the host /proc): the lookup of "1"
#   in the test's private mount namespace fails with ENOENT on these machines. The same
#   cases through fsopen/open_tree (the handles libcontainer uses) run and pass.
# - Unless VENDOR_TEST_FULL=1: tests::test_root_ops, tests::test_resolve,
#   tests::test_resolve_partial, tests::test_race_resolve_partial, about 4,300 exhaustive
#   combinations of operation x resolver x path that take ~9 minutes of mostly system time
#   here; of them, tests::test_root_ops::root_mkdir_all_* (~25 s) runs below, since
#   Root::mkdir_all goes through the patched directory reopen (patch 007).
if [ "${VENDOR_TEST_FULL:-0}" = 1 ]; then
  slow=""
else
  slow="--skip tests::test_root_ops --skip tests::test_resolve --skip tests::test_race_resolve_partial"
fi
# shellcheck disable=SC2086 # $slow is a list of arguments
run pathrs \
  --skip tests::test_procfs::procfs_overmounts_new_procpid1_ \
  --skip tests::test_procfs::procfs_overmounts_new_opath_procpid1_ \
  --skip tests::test_procfs::procfs_overmounts_new_openat2_procpid1_ \
  $slow \
  || status=1
if [ "${VENDOR_TEST_FULL:-0}" != 1 ]; then
  run pathrs tests::test_root_ops::root_mkdir_all || status=1
fi

exit $status
