# Polis — build, install, test, demo. Everything runs as root on Debian 12.
PREFIX ?= /usr/local
CARGO ?= cargo
BINS := polis-runc containerd-shim-polis-v2 polis-bridge polis-ipam polis-snapshotter
RELEASE := target/release
HOST_TARGET := $(shell rustc -vV | sed -n 's/^host: //p')
MULTIARCH := $(shell gcc -print-multiarch)

.PHONY: all build deps install test test-v2 unit-test vendor-test demo bench bench-v2 fmt clippy check clean shim-static check-shim-rss shim-symbol-order

all: build

deps:
	scripts/install-deps.sh

# Every binary is linked statically (glibc; libseccomp for polis-runc): a container start execs
# polis-runc two or three times and dynamic loading was about 7% of a `run` (perf); the shim is
# one long-lived process per container or pod, and a shared libc counts whole in each one's
# RSS; the CNI plugins run once per ADD/DEL. All stay position-independent, with packed relative
# relocations (DT_RELR, glibc >= 2.36): start-up then reads a few KB of relocations instead of
# hundreds. polis-runc, the CNI plugins and the snapshotter are one cargo build (one build of
# their shared dependencies); the binaries are copied to target/release, where the tests, the
# demo and `make install` take them.
STATIC_RUSTFLAGS := -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs
STATIC_ENV = LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/$(MULTIARCH) \
	RUSTFLAGS="$(STATIC_RUSTFLAGS)"
STATIC_BINS := polis-runc polis-bridge polis-ipam polis-snapshotter
build:
	$(STATIC_ENV) $(CARGO) build --release --target $(HOST_TARGET) \
		-p polis-runc -p polis-bridge -p polis-snapshotter --bins
	$(MAKE) --no-print-directory shim-static
	mkdir -p $(RELEASE)
	cp $(addprefix target/$(HOST_TARGET)/release/,$(STATIC_BINS)) \
		target/$(HOST_TARGET)/shim/containerd-shim-polis-v2 $(RELEASE)/

# The static shim, built on its own: with polis-runc in the same build, cargo would unify
# the features of shared dependencies, and the symbols' hashes would follow polis-runc's
# dependencies. shim/symbol-order.txt names those symbols (scripts/shim-symbol-order.sh
# records it with this same target).
shim-static:
	$(STATIC_ENV) $(CARGO) build --profile shim -p containerd-shim-polis-v2 --target $(HOST_TARGET)

# A shim's RSS (target <= 2 MB, issue 12) rests on shim/symbol-order.txt: with the list a
# sleeping shim holds 1.3-1.5 MB here, without it 2.0 MB. CI fails over 1.6 MB, with the
# measured RSS, so a list gone stale is re-recorded before the target is lost.
check-shim-rss: deps build
	BUILD=0 RUNS=3 SLEEPERS=4 RSS_MAX_KB=1600 bench/shim.sh

# Records shim/symbol-order.txt again (valgrind through a private containerd, a few minutes).
shim-symbol-order: deps build
	FRESH=1 scripts/shim-symbol-order.sh

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	for b in $(BINS); do \
	  [ -f $(RELEASE)/$$b ] || { echo "install: $(RELEASE)/$$b is missing (did the build fail?)" >&2; exit 1; }; \
	  install -m 0755 $(RELEASE)/$$b $(DESTDIR)$(PREFIX)/bin/ || exit 1; \
	done

# Every test, as root, against the real kernel. The release binaries are built once and
# shared by all test binaries (POLIS_BIN_DIR), so nothing is compiled twice.
# integration/tests/v2_*.rs need a pure cgroup v2 host with systemd: `make test-v2` runs them
# in a nested guest (scripts/v2vm.sh), built once per machine.
test: deps build
	$(MAKE) --no-print-directory vendor-test
	POLIS_BIN_DIR=$(CURDIR)/$(RELEASE) $(CARGO) nextest run --workspace --no-fail-fast --test-threads 2 \
		-E 'not binary(/^v2_/)'

# The vendored crates (vendor/, issue 12): the patch files must re-create vendor/<crate> from
# the crates.io sources exactly, and the crates' own unit tests run in a workspace of their
# own under target/vendor-test (their dev-dependencies stay out of Cargo.lock); the tests
# these machines cannot run are listed, with the reason, in vendor/test.sh.
vendor-test:
	vendor/check-patches.sh
	CARGO=$(CARGO) vendor/test.sh

test-v2: deps build
	scripts/test-v2.sh

demo: deps build
	scripts/demo.sh

bench: deps build
	bench/runtime.sh

# The same ratios on cgroup v2 + systemd, in the nested guest (indicative: emulated CPU).
bench-v2: deps build
	bench/v2.sh

# Long runs under load (issue 13), not part of `make test`: churn, exec probes, idle cost and
# pods through a private containerd, Polis against the Go shim + runc (about 30 minutes).
# soak-short is the few-minutes version CI runs.
soak: deps build
	BUILD=0 bench/soak.sh churn 1000 exec 10000 idle 600 pods 50
	POLIS_BIN_DIR=$(CURDIR)/$(RELEASE) $(CARGO) nextest run --no-capture --test-threads 1 \
		-p polis-integration -p polis-snapshotter -p polis-bridge --test faults_recovery --test shim_idle

soak-short: deps build
	BUILD=0 EXEC_GO=0 bench/soak.sh churn 100 exec 1000 idle 30 pods 10

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

check: fmt clippy test

clean:
	$(CARGO) clean
