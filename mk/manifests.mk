# Katib manifests (docs/manifests.md): generation, offline checks, images, end-to-end on a real cluster.
REGISTRY ?= ghcr.io/katib-surrogate
TAG ?= 0.1.0
ACCESS_MODE ?= ReadWriteMany
STORAGE_CLASS ?=

.PHONY: manifests-check

manifests: $(STAMP) ## regenerate manifests/ (REGISTRY=... TAG=... [ACCESS_MODE=ReadWriteOnce] [STORAGE_CLASS=...])
	$(PY) manifests/generate.py --registry '$(REGISTRY)' --tag '$(TAG)' --access-mode '$(ACCESS_MODE)' \
		$(if $(STORAGE_CLASS),--storage-class '$(STORAGE_CLASS)')

manifests-check: $(STAMP) ## offline checks: generated files current, yamllint, K8s + Katib schemas, webhook rules
	$(PY) manifests/generate.py --check
	$(PY) manifests/validate.py

images: ## build and push $(REGISTRY)/suggestion:$(TAG) and $(REGISTRY)/trainer:$(TAG) (docker/podman; PUSH=0: build only)
	REGISTRY='$(REGISTRY)' TAG='$(TAG)' bash scripts/build-images.sh

e2e: $(STAMP) ## on a real cluster (kind or kubeconfig): install Katib, load images, run the CPU smoke experiments, compare
	REGISTRY='$(REGISTRY)' TAG='$(TAG)' PYTHON='$(PY)' bash scripts/e2e.sh
