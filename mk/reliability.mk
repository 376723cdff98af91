# Reliability and security (issue 7, docs/reliability.md): long load/fault tests, the load benchmark,
# and a separate tool venv for the security scanners (kept out of .venv: checkov alone pulls ~100 packages).
SECURITY_VENV := .tools/security
SECURITY_STAMP := $(SECURITY_VENV)/.installed
CHECKOV_VERSION := 3.3.30
PIP_AUDIT_VERSION := 2.10.1
LOAD_ARGS ?=

.PHONY: test-reliability bench-load security-tools audit

# Every transitive version is pinned in requirements/security-constraints.txt (pip freeze of the tool venv).
$(SECURITY_STAMP): requirements/security-constraints.txt
	@test -x $(SECURITY_VENV)/bin/python || $(PYTHON) -m venv $(SECURITY_VENV)
	$(SECURITY_VENV)/bin/pip install -q -c requirements/security-constraints.txt checkov==$(CHECKOV_VERSION) pip-audit==$(PIP_AUDIT_VERSION)
	@touch $@

security-tools: $(SECURITY_STAMP) ## checkov + pip-audit, pinned, in their own venv (.tools/security)

# `make test` scans the manifests with checkov (tests/manifests/test_security.py): it needs the tool venv,
# and there the scan fails instead of skipping when checkov is missing.
test: $(SECURITY_STAMP)
test: export REQUIRE_SECURITY_SCAN := 1

test-reliability: $(STAMP) ## long load / restart / preemption tests (marked reliability), a few minutes
	nice -n 10 $(PY) -m pytest -q -p no:cacheprovider -m reliability tests/reliability

bench-load: $(STAMP) ## 32 clients x 10,000 GetSuggestions vs a service process -> docs/reliability.md (~8 min)
	nice -n 10 $(PY) bench/load_service.py --write docs/reliability.md $(LOAD_ARGS)

audit: $(SECURITY_STAMP) ## pip-audit the service image's pins (needs the PyPI JSON API or OSV; not reachable here)
	$(SECURITY_VENV)/bin/pip-audit -r suggestion_service/requirements.txt --no-deps --disable-pip
