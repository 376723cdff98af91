# client (issue 5): the local comparison demo and helpers around `python -m client`.
# DEMO_MAX_TRIALS caps every experiment's maxTrialCount so 3 tasks x 4 algorithms finish in < 5 minutes
# on 2 CPU cores at tiny scale; the cap is printed in the output. DEMO_MAX_TRIALS= runs the manifests' budgets.
DEMO_MAX_TRIALS ?= 3
DEMO_OUTPUT ?= runs/demo
LOCAL_STORE ?= runs/local.sqlite

.PHONY: demo demo-status demo-clean

demo: $(STAMP) ## compare grid/random/surrogate-gp/surrogate-rf locally on sst2/mrpc/cifar10 (tiny) -> runs/demo
	$(PY) -m client compare --local --store $(LOCAL_STORE) --output $(DEMO_OUTPUT) \
		$(if $(DEMO_MAX_TRIALS),--max-trials $(DEMO_MAX_TRIALS))

demo-status: $(STAMP) ## status table of the local runs in runs/local.sqlite
	$(PY) -m client status --local --store $(LOCAL_STORE)

demo-clean: ## forget the local runs (store, trial folders, demo report)
	rm -rf $(LOCAL_STORE) $(LOCAL_STORE)-wal $(LOCAL_STORE)-shm runs/local $(DEMO_OUTPUT)
