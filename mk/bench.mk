# `make bench`: the figures of issue 5 (bench/run.ts; results in
# build/bench/results.json, summary in bench/RESULTS.md). Needs root:
# every boot runs in a fresh private mount namespace under chroot.
# BENCH_ROUNDS=N (default 21), BENCH_ONLY=a,b,c,d,e to pick figures.

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
