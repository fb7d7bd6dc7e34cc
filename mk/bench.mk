# `make bench`: the figures of issue 5 (bench/run.ts; results in
# build/bench/results.json, summary in bench/RESULTS.md). Needs root:
# every boot runs in a fresh private mount namespace under chroot.
# BENCH_ROUNDS=N (default 40), BENCH_COPIES=N (default 8: copies of the binary the
# own-work figures spread their rounds over), BENCH_ONLY=a,b,c,d,e,g to pick figures.

build/bench/tcmd: bench/tcmd.c
	@mkdir -p $(@D)
	$(CC) -O2 -static -o $@ $<

# The figures compare with the previous landing's executable, built as it
# shipped (Node 20; bench/build-baseline.sh). BENCH_COMPARE=<binary> overrides it.
BENCH_BASELINE_REV ?= a4b51ba
BENCH_BASELINE := build/bench/baseline-$(BENCH_BASELINE_REV)
$(BENCH_BASELINE):
	bash bench/build-baseline.sh $(BENCH_BASELINE_REV) $@

bench: deps dist/cfsroot build/bench/tcmd $(BENCH_BASELINE)
	BENCH_COMPARE="$${BENCH_COMPARE:-$(BENCH_BASELINE)}" npx tsx bench/run.ts

# `make bench-profile`: where the boot's own JavaScript spends its time, by
# function (bench/profile.ts). It needs a build of its own, in build/profile:
# not minified (the profile names functions), and with V8's CPU profiler on
# from the first instruction; such a build ends every run through Node's
# normal exit, where the profile is written (src/startup/entry.ts). Each
# profile goes to /out of the bench root (bench/harness.ts runInNamespace).
# PROFILE_ENABLED: prepare-root.conf's `enabled` for the boot; PROFILE_ROUNDS: boots (and --version runs) merged.
PROFILE_INTERVAL_US ?= 50
PROFILE_ENABLED ?= yes
PROFILE_ROUNDS ?= 40
PROFILE_EXEC_ARGV := $(SEA_EXEC_ARGV),"--cpu-prof","--cpu-prof-dir=/out","--cpu-prof-interval=$(PROFILE_INTERVAL_US)"
.PHONY: bench-profile profile-build
profile-build: deps build/native/cfsroot_sys.node
	@# Made again each time, so that a changed PROFILE_INTERVAL_US is in it.
	rm -f build/profile/sea-config.json
	$(MAKE) --no-print-directory DIST=build/profile MINIFY= SEA_EXEC_ARGV='$(PROFILE_EXEC_ARGV)' build/profile/cfsroot

bench-profile: profile-build build/bench/tcmd
	npx tsx bench/profile.ts build/profile/cfsroot $(PROFILE_ENABLED) $(PROFILE_ROUNDS)

# `make bench-compiles`: which of cfsroot's functions a run still compiles,
# i.e. what the snapshot's warm-up (src/startup/warmup.ts) does not run
# (bench/compiles.ts). Its own build, in build/compiles: not minified, with
# V8's function events logged to /out of the bench root.
# COMPILES_ENABLED: prepare-root.conf's `enabled` for the boot.
COMPILES_ENABLED ?= yes
COMPILES_EXEC_ARGV := $(SEA_EXEC_ARGV),"--log-function-events","--logfile=/out/v8.log","--no-logfile-per-isolate"
.PHONY: bench-compiles compiles-build
compiles-build: deps build/native/cfsroot_sys.node
	@# Made again each time, as profile-build is (its flags are in this file, not the Makefile).
	rm -f build/compiles/sea-config.json
	$(MAKE) --no-print-directory DIST=build/compiles MINIFY= SEA_EXEC_ARGV='$(COMPILES_EXEC_ARGV)' build/compiles/cfsroot

bench-compiles: compiles-build build/bench/tcmd
	npx tsx bench/compiles.ts build/compiles/cfsroot $(COMPILES_ENABLED)
