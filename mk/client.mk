# client (issue 5): the local comparison demo and helpers around `python -m client`.
# `make demo` runs every experiment of manifests/ (3 tasks x grid/random/surrogate-gp/surrogate-rf) with the
# manifests' own budgets (grid 24 trials, the others 12: 180 trials) at tiny scale, trials forked from a
# pre-warmed launcher (see docs/client.md). Optional: DEMO_MAX_TRIALS=N caps every experiment's
# maxTrialCount (printed in the output); DEMO_FLAGS passes more flags (e.g. --launcher subprocess, --fresh).
DEMO_MAX_TRIALS ?=
DEMO_FLAGS ?=
DEMO_OUTPUT ?= runs/demo
LOCAL_STORE ?= runs/local.sqlite

.PHONY: demo demo-status demo-clean

demo: $(STAMP) ## compare search algorithms locally on sst2/mrpc/cifar10 (tiny) -> runs/demo/comparison.{md,png}
	$(PY) -m client compare --local --store $(LOCAL_STORE) --output $(DEMO_OUTPUT) \
		$(if $(DEMO_MAX_TRIALS),--max-trials $(DEMO_MAX_TRIALS)) $(DEMO_FLAGS)

demo-status: $(STAMP) ## status table of the local runs in runs/local.sqlite
	$(PY) -m client status --local --store $(LOCAL_STORE)

demo-clean: ## forget the local runs (store, trial folders, demo report)
	rm -rf $(LOCAL_STORE) $(LOCAL_STORE)-wal $(LOCAL_STORE)-shm runs/local $(DEMO_OUTPUT)
