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

# The HTML report's test opens the page in a real headless browser (Debian's chromium).
BROWSER := $(VENV)/.browser
$(BROWSER): | $(STAMP)
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || { echo "the report's browser test needs chromium: apt-get install chromium (as root)" >&2; exit 1; }
	touch $(BROWSER)

demo: $(STAMP)
	$(VENV)/bin/fleetnas demo

test: $(STAMP) $(BROWSER)
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
