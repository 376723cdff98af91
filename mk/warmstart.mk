# Warm start (issue 8): cold vs warm-started surrogates on tabulated task pairs through the real gRPC service.
WARM_START_SEEDS ?= 20

.PHONY: bench-warm-start

bench-warm-start: $(STAMP) ## warm-start benchmark (about 10 min on 2 cores) -> bench/results/warm_start, docs/benchmarks.md
	nice -n 5 $(PY) bench/warm_start.py --seeds $(WARM_START_SEEDS) --write docs/benchmarks.md
