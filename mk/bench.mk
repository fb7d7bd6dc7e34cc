# `make bench`: the figures of issue 5 (bench/run.ts; results in
# build/bench/results.json, summary in bench/RESULTS.md). Needs root:
# every boot runs in a fresh private mount namespace under chroot.
# BENCH_ROUNDS=N (default 21), BENCH_ONLY=a,b,c,d,e to pick figures.

build/bench/tcmd: bench/tcmd.c
	@mkdir -p $(@D)
	$(CC) -O2 -static -o $@ $<

bench: deps dist/cfsroot build/bench/tcmd
	npx tsx bench/run.ts
