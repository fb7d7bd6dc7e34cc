# make fuzz: every fuzz target of test/fuzz/targets.ts with >= 1,000,000 cases
# in total (FUZZ_CASES), a fresh seed each run (FUZZ_SEED to replay one).
# Also compares GVariant normal form and key files with GLib (python3-gi), 100,000 each on top.
# Prints one line per target and `fuzz: N cases, F failures`; fails if F > 0.
FUZZ_CASES ?= 1000000
FUZZ_SEED ?=

fuzz: npm-deps
	npx tsx test/fuzz/run.ts --cases $(FUZZ_CASES) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED))
