# Two commands for a new user: `make demo` and `make test`. Both install into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
# The stamp names the venv's torch (its version carries the CUDA build, e.g. 2.5.1+cu121): changing torch reinstalls,
# and tools/install.sh then rebuilds mmcv for it.
TORCH_ID := $(shell test -x $(PY) && $(PY) -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null)
STAMP := $(VENV)/.mammo-det-installed-$(TORCH_ID)

.PHONY: install test test-fast demo lint clean

install: $(STAMP)

# The stamp makes a second `make install` a no-op; editing the dependencies reinstalls.
$(STAMP): pyproject.toml tools/install.sh
	VENV=$(VENV) bash tools/install.sh
	rm -f $(VENV)/.mammo-det-installed*
	touch $(VENV)/.mammo-det-installed-$$($(PY) -c 'import importlib.metadata as m; print(m.version("torch"))')

# Two pytest workers (pytest-xdist) by default, each with its share of the cores; TEST_WORKERS=0 runs in one process.
# worksteal: a worker that runs out takes queued tests from the other (plain load scheduling left one idle for
# minutes behind the demo-based tests).
TEST_WORKERS ?= 2

test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The edit loop: everything that trains no model.
test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not slow" $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/mammo-det demo --out work_dirs/demo

lint: install
	$(VENV)/bin/ruff check mammo_det data_converters tools tests configs

clean:
	rm -rf $(VENV) work_dirs
