# Every target creates the virtualenv it needs; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint protos clean

$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fleetnas demo

test: $(STAMP)
	$(PY) scripts/gen_protos.py --check
	$(VENV)/bin/ruff check agent controller tests bench scripts
	$(VENV)/bin/mypy agent controller
	$(PY) -m pytest -q || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests: a suite that runs nothing proves nothing" >&2; exit $$rc; }

lint: $(STAMP)
	$(VENV)/bin/ruff check agent controller tests bench scripts
	$(VENV)/bin/mypy agent controller

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

clean:
	rm -rf $(VENV) build *.egg-info
