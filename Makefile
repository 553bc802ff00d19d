# The course in two commands:
#   make course   build the environment, execute the solution notebooks, write build/course/REPORT.md
#   make test     build the environment, run the whole test suite (unit and notebook tests)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.coursekit-installed

.PHONY: help setup course site test browser notebooks datasets clean clean-cache

help:
	@echo "make setup       create .venv, install the package, build the embedded dataset"
	@echo "make course      execute the solution notebooks, write build/course/REPORT.md and report.json"
	@echo "make site        build the course as a static web site in build/site (offline; open build/site/index.html)"
	@echo "make test        run the whole test suite (unit tests and notebooks)"
	@echo "make browser     install Debian's chromium for the browser tests, if it is missing (as root)"
	@echo "make notebooks   regenerate the student notebooks in notebooks/ from solutions/"
	@echo "make datasets    list the datasets and whether they are present"
	@echo "make clean       remove build/ (keeps .venv and the caches)"
	@echo "make clean-cache remove the feature cache and the built embedded dataset"

# One pip call installs the package with torch and torchvision, so pip picks a matching pair.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)
	@$(PY) -m coursekit dataset embedded

course: setup
	$(PY) -m coursekit course

# The site reuses the notebooks that `make course` executed (build/course), executing only what changed.
site: setup
	$(PY) -m coursekit site

# The browser tests (tests/test_site.py) drive Debian's chromium through playwright (playwright cannot download its
# own browser here). Quiet when a Chromium is there; installs it as root where apt-get is; else says how.
browser:
	@if [ -n "$$COURSEKIT_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	   || command -v google-chrome >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "make browser: installing Debian's chromium for the browser tests ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "make browser: no Chromium found, so the browser tests will be skipped (and fail under CI). Install it:" \
	       "sudo apt-get install chromium (Debian, Ubuntu), or set COURSEKIT_CHROMIUM=/path/to/chrome" >&2; \
	fi

# pytest's exit code 5 means it collected no test at all: that is a broken suite, never a pass.
test: setup browser
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (is tests/ there?)" >&2; exit 1; fi; \
	exit $$rc

notebooks: $(STAMP)
	$(PY) -m coursekit notebooks

datasets: $(STAMP)
	@$(PY) -m coursekit datasets

clean:
	rm -rf build

clean-cache: $(STAMP)
	@$(PY) -c "from coursekit.cache import cache_root; import shutil; r = cache_root(); print('removing', r); shutil.rmtree(r, ignore_errors=True)"
