# `make serve` and `make test` each build .venv when it is missing or stale.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
UV      := python3 -m uv
# Every test starts many Python processes (server, workers, job children, the CLI): with
# PYTHONDONTWRITEBYTECODE set, each one recompiled gradio and torch from source (~20 s a process).
RUN     := env -u PYTHONDONTWRITEBYTECODE
# Test processes run one torch thread each (tests/conftest.py), so two xdist workers fill 2 cores.
TEST_WORKERS ?= 2

.PHONY: serve test bench gpu-check system-deps clean

$(STAMP): pyproject.toml
	python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	test -x $(PY) || $(UV) venv -q $(VENV) --python python3
	$(UV) pip install -q --python $(PY) -e '.[test]'
	touch $(STAMP)

# Debian packages the tests drive: chromium (browser tests), redis-server (Redis queue path),
# postgresql (the PostgreSQL tests' server), espeak-ng and sox (test speech). Installed only when missing; needs root or sudo.
system-deps:
	@bash scripts/system-deps.sh

serve: $(STAMP)
	$(RUN) $(VENV)/bin/bark-studio serve

test: $(STAMP) system-deps
	$(RUN) HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

bench: $(STAMP)
	$(RUN) HF_HUB_OFFLINE=1 $(PY) -m bench.run_all

# The GPU path end to end on one CUDA card (training kill + resume, generation, a real worker, the
# bench's GPU rows), as one table; refuses in one line where there is no CUDA.
gpu-check: $(STAMP)
	@$(RUN) HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) scripts/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
