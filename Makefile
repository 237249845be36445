# Each target sets up what it needs on a fresh machine: system packages, the virtualenv, Patter.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.patter-installed
BENCH_STAMP := $(VENV)/.patter-bench-installed

.PHONY: demo test lint bench speech-deps cluster-deps

demo: $(STAMP)  ## a full phone call against the loopback fakes: no account, no key
	$(PY) -P -m patter.testing.demo

test: cluster-deps lint  ## lint and type check, then the test suite (fails when no test ran)
	$(VENV)/bin/pytest -q

lint: $(STAMP)  ## ruff, then mypy --strict over the package as a wheel lays it out
	$(VENV)/bin/ruff check patter processors transports tests examples benchmarks scripts
	$(PY) -P scripts/typecheck.py

bench: cluster-deps $(BENCH_STAMP)  ## every benchmark; writes benchmarks/results/latest.md and its charts
	$(PY) -P benchmarks/run_all.py

# $(call apt-install-missing,TOOLS,WHAT FOR): apt-get install whichever of TOOLS is not there.
# cluster-deps runs after speech-deps: one apt-get at a time, even under make -j.
define apt-install-missing
@missing=""; \
for tool in $(1); do \
	command -v $$tool >/dev/null 2>&1 || test -x /usr/sbin/$$tool || missing="$$missing $$tool"; \
done; \
test -z "$$missing" || { \
	echo "installing$$missing ($(2))"; \
	(apt-get update -qq && apt-get install -y -qq $$missing) >/dev/null; }
endef

speech-deps:  ## the demo's and the tests' caller voice
	$(call apt-install-missing,espeak-ng,the caller's speech)

cluster-deps: | speech-deps  ## the scale-out tests and benchmarks: a real Redis and HAProxy
	$(call apt-install-missing,redis-server haproxy,the cluster tests' Redis and HAProxy)

$(STAMP): pyproject.toml | speech-deps
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,offline]'
	@touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,offline,bench]'
	@touch $(BENCH_STAMP)
