# Optimizer benchmark (issue 6, docs/benchmarks.md): our algorithms over gRPC against peer optimizers.
# The peers live in their own environment, .venv-bench, never in .venv.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_PIP := $(BENCH_VENV)/bin/pip
BENCH_CONSTRAINTS := requirements/bench-constraints.txt
BENCH_STAMP := $(BENCH_VENV)/.installed
# The service's runtime dependencies, the peers and what the harness needs (exact versions: the constraints).
BENCH_PACKAGES := numpy scipy scikit-learn grpcio grpcio-health-checking protobuf prometheus-client threadpoolctl \
	matplotlib optuna hyperopt scikit-optimize smac ConfigSpace coco-experiment pandas pymoo gpytorch \
	pytest pytest-timeout
# HEBO 0.3.6 declares numpy<1.25 and pymoo==0.6.0 but runs with the versions above: installed without deps.
BENCH_NODEPS := HEBO disjoint-set

.PHONY: bench bench-quick bench-venv bench-lock bench-test sklearn-tables

# torch (CPU build, for HEBO) goes first in its own call, as for .venv.
$(BENCH_STAMP): $(BENCH_CONSTRAINTS)
	@test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PIP) install -q --upgrade pip==25.3
	$(BENCH_PIP) install -q -c $(BENCH_CONSTRAINTS) torch
	$(BENCH_PIP) install -q -c $(BENCH_CONSTRAINTS) $(BENCH_PACKAGES)
	$(BENCH_PIP) install -q --no-deps -c $(BENCH_CONSTRAINTS) $(BENCH_NODEPS)
	$(BENCH_PY) -c "import optuna, hyperopt, skopt, smac, cocoex, hebo.optimizers.hebo, grpc, sklearn"
	@touch $(BENCH_STAMP)

bench-venv: $(BENCH_STAMP) ## create .venv-bench (service deps + optuna, hyperopt, skopt, SMAC3, HEBO, COCO)

bench-lock: ## re-pin requirements/bench-constraints.txt from the current .venv-bench
	{ sed -n '/^#/p' $(BENCH_CONSTRAINTS); $(BENCH_PIP) freeze | LC_ALL=C sort; } > $(BENCH_CONSTRAINTS).new
	mv $(BENCH_CONSTRAINTS).new $(BENCH_CONSTRAINTS)

bench-quick: $(BENCH_STAMP) ## optimizer benchmark, quick suite (< 15 min on 2 cores) -> bench/results/quick
	$(BENCH_PY) bench/run_optimizers.py --suite quick --fresh

bench: $(BENCH_STAMP) ## optimizer benchmark, full suite + 3 more random streams of surrogate-gp (about 1.5 h on 2 cores) -> docs/benchmarks.md
	$(BENCH_PY) bench/run_optimizers.py --suite full --write docs/benchmarks.md
	$(BENCH_PY) bench/analysis/crosscheck.py --variants gp --prefixes s1:,s2:,s3: --out bench/results/streams \
		--write docs/benchmarks.md

sklearn-tables: $(STAMP) ## regenerate bench/tables/sklearn_*.csv (Katib-shaped grids from real scikit-learn fits)
	$(PY) bench/sklearn_grid_tables.py

bench-test: $(BENCH_STAMP) ## tests/bench in .venv-bench, where the peer smoke tests run too (make test skips them)
	$(BENCH_PY) -m pytest -q -p no:cacheprovider tests/bench

# Tuning study (docs/benchmarks.md, sections optimizers-limits and optimizers-tuning): settings sweep on the
# grids (dev seeds), holdout seeds, whole-suite cross-check against the full run's peers, limits analysis.
# Every step resumes from bench/results/{sweep,crosscheck,limits}; delete those files to start over.
.PHONY: bench-noise bench-tuning
bench-noise: $(STAMP) ## retrain every tiny-grid configuration with training seeds 1, 2 (~10 min) -> bench/results/limits/noise.csv
	$(PY) bench/analysis/noise.py --top 24 --seeds 1,2

bench-tuning: $(BENCH_STAMP) ## settings sweep, holdout, whole-suite check (~40 min) -> docs/benchmarks.md (optimizers-limits, -tuning)
	$(BENCH_PY) bench/analysis/sweep.py run --variants all --seeds 0-39 --tables seed --out bench/results/sweep/dev.csv
	$(BENCH_PY) bench/analysis/sweep.py run --variants gp,gp-pi,gp-pi-n2,gp-port-eipi,rf,rf-pi --seeds 1000-1029 \
		--tables all --out bench/results/sweep/holdout.csv
	$(BENCH_PY) bench/analysis/crosscheck.py --variants gp,gp-port-eipi
	$(BENCH_PY) bench/analysis/crosscheck.py --variants gp --prefixes cand:,cand-b:,cand-c:
	$(BENCH_PY) bench/analysis/limits.py --write docs/benchmarks.md
	$(BENCH_PY) bench/analysis/tuning.py --write docs/benchmarks.md
