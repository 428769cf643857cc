# Two commands for a new user: `make demo` and `make test`. Both install into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mammo-det-installed

.PHONY: install test demo lint clean

install: $(STAMP)

# The stamp makes a second `make install` a no-op; editing the dependencies reinstalls.
$(STAMP): pyproject.toml tools/install.sh
	VENV=$(VENV) bash tools/install.sh
	touch $@

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/mammo-det demo --out work_dirs/demo

lint: install
	$(VENV)/bin/ruff check mammo_det data_converters tools tests configs

clean:
	rm -rf $(VENV) work_dirs
