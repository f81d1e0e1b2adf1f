# fleetkit — the two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEPS   := pyproject.toml

.PHONY: demo test lint typecheck pytest apt-deps clean \
        demo-registry demo-pull demo-proxy demo-schedule demo-cluster demo-play demo-netns

$(STAMP): $(DEPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian peers for the interop tests: installed as root, only the missing ones.
apt-deps:
	@pkgs=$$(cat deps/apt-*.txt | sed 's/#.*//' | tr -s ' \n' '\n' | grep -v '^$$' | sort -u); \
	missing=""; for p in $$pkgs; do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "apt-deps: all present"; \
	elif [ "$$(id -u)" = 0 ]; then echo "apt-deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing) >/tmp/fleetkit-apt.log 2>&1 \
	  || { tail -20 /tmp/fleetkit-apt.log; exit 1; }; \
	else echo "apt-deps: not root, missing:$$missing (interop tests will skip)"; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

pytest: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests

test: $(STAMP) apt-deps lint typecheck pytest

demo: $(STAMP) demo-registry demo-pull demo-proxy demo-schedule demo-cluster demo-play demo-netns

demo-registry demo-pull demo-proxy demo-schedule demo-cluster demo-play demo-netns: $(STAMP)
	@if [ -x scripts/$@.sh ]; then PATH=$(CURDIR)/$(BIN):$$PATH scripts/$@.sh; else echo "$@: not yet"; fi

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
