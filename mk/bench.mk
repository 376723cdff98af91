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

bench: $(BENCH_STAMP) ## optimizer benchmark, full suite (about 1 h on 2 cores) -> bench/results/full, docs/benchmarks.md
	$(BENCH_PY) bench/run_optimizers.py --suite full --write docs/benchmarks.md

sklearn-tables: $(STAMP) ## regenerate bench/tables/sklearn_*.csv (Katib-shaped grids from real scikit-learn fits)
	$(PY) bench/sklearn_grid_tables.py

bench-test: $(BENCH_STAMP) ## tests/bench in .venv-bench, where the peer smoke tests run too (make test skips them)
	$(BENCH_PY) -m pytest -q -p no:cacheprovider tests/bench
