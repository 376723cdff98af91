# rehearsal (issue 14): run the manifests' Jobs and Experiments on this CPU machine the way a Katib cluster
# runs them (docs/rehearsal.md). By default one Experiment per task, a few trials each, the first trial of
# each preempted mid-epoch; exits 1 and lists the findings when something would fail on a cluster.
REHEARSE_EXPERIMENTS ?= sst2-surrogate-gp,mrpc-surrogate-gp,cifar10-surrogate-gp
REHEARSE_MAX_TRIALS ?= 3
REHEARSE_FLAGS ?=

.PHONY: rehearse

rehearse: $(STAMP) ## rehearse the cluster run on this machine (cache Job, suggestion service, trial pods, preemption) and print a per-trial account
	$(PY) -m client rehearse --experiment $(REHEARSE_EXPERIMENTS) --max-trials $(REHEARSE_MAX_TRIALS) --preempt $(REHEARSE_FLAGS)
