# make fuzz: every fuzz target of test/fuzz/targets.ts with >= 1,000,000 cases
# in total (FUZZ_CASES), a fresh seed each run (FUZZ_SEED to replay one), then
# GVariant normal form and key files compared with GLib (python3-gi, 100,000
# each) and the memory-per-input-byte property of the GVariant readers
# (test/fuzz/memory.ts, FUZZ_MEMORY_CASES, ~35 s for 1,000).
# Prints one line per property with its case count and `fuzz: N cases, F failures`;
# fails if F > 0.
FUZZ_CASES ?= 1000000
FUZZ_MEMORY_CASES ?= 1000
FUZZ_SEED ?=

fuzz: npm-deps
	npx tsx test/fuzz/run.ts --cases $(FUZZ_CASES) --memory $(FUZZ_MEMORY_CASES) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED))
