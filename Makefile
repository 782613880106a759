# conflictradar: `make demo` and `make test` work on a fresh machine with python3 (>= 3.11) and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: mypy-tree bytecode demo test bench eval lint clean sample-logs docs fuzz soak

$(STAMP): pyproject.toml requirements.lock
	@$(PY) -c 'import sys; assert sys.version_info >= (3, 11), "conflictradar needs Python >= 3.11, found " + sys.version.split()[0]'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# The project's own modules as bytecode, as an installed package has them: the editable install
# leaves them to be compiled at every start of every command where PYTHONDONTWRITEBYTECODE is set
# (0.15-0.2 s of each start, measured). Python ignores a stale file; this refreshes what changed.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q conflictradar ingest alerts dashboard sample_logs bench tests > /dev/null

demo: bytecode
	$(BIN)/conflictradar demo

# mypy cannot see the editable install's import hook: it reads the conflictradar package as
# installed from a tree of symlinks (conflictradar/ingest -> ingest/, ...).
mypy-tree:
	rm -rf build/mypy && mkdir -p build/mypy/conflictradar
	cd build/mypy/conflictradar && for f in ../../../conflictradar/*.py; do ln -s $$f .; done && for p in ingest alerts dashboard sample_logs; do ln -s ../../../$$p $$p; done

lint: $(STAMP) mypy-tree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: bytecode lint
	$(BIN)/python -m tests.system_packages   # Chromium, Prometheus, Alertmanager from Debian when missing
# The browser test first, alone: the page render times it reports are timings, and beside a
# second test worker on 2 cores they measured that worker (Overview 2.1-2.4 s against ~1.6 s).
	$(BIN)/python -m pytest -q tests/test_dashboard_browser.py
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --ignore tests/test_dashboard_browser.py   # two workers, longest files first (tests/conftest.py)

# Figures and ratios against references measured in the same run (never asserted in tests).
# The lake bench generates LAKE_LINES lines under /tmp (several GB at 20M; deleted afterwards).
LAKE_LINES ?= 20000000
bench: bytecode
	$(BIN)/python -u -m bench            # ingest, realistic and uniform files: vs wc -l, DuckDB scan, GoAccess
	$(BIN)/python -u -m bench.watch      # watch: append->visible latency under readers; throughput
	$(BIN)/python -u -m bench.watch_cost # watch cost: CPU% of a core, RSS, latency at 100/1k/10k lines/s
	$(BIN)/python -u -m bench.watch_cost --rates 100,1000 --budget 3  # the same under [watch] cpu_budget = "3%"
	$(BIN)/python -u -m bench.watch_cost --fleet --rates 100,1000  # the same on a fleet: gateway + service logs of the same requests
	$(BIN)/python -u -m bench.watch_cost --files 48 --rates 100,1000  # the same spread over 48 access logs (a host's virtual hosts)
	$(BIN)/python -u -m bench.watch_cost --files 48 --rates 100 --history 180  # the same after 3 h of logs: alert baselines in full
	$(BIN)/python -u -m bench.look_cost  # one look's CPU over 1, 4, 16, 48 files that each grew a little (in-process)
	$(BIN)/python -u -m bench.look_cost --fleet  # the same over a fleet's two gateway and two service logs
	$(BIN)/python -u -m bench.alert_cost  # one alert evaluation over 48 logs after 3 min and 3 h of history (in-process)
	$(BIN)/python -u -m bench.demo_cost  # make demo's watcher after its backfill: CPU% of a core, RSS
	$(BIN)/python -u -m bench.dashboard  # dashboard: data-fetch time per page on 10M requests
	$(BIN)/python -u -m bench.dashboard_live  # dashboard: each page's render time in Chromium, demo's watcher live
	$(BIN)/python -u -m bench.lake --lines $(LAKE_LINES)  # lake: Dask ingest, 1 and 2 workers vs one machine; reads
	$(BIN)/python -u -m bench.alerts     # alerts: 409 spike -> Slack-format receiver latency

eval: bytecode
	$(BIN)/python -m bench.evaluate
	$(BIN)/python -u -m bench.evaluate_alerts   # alerts: default rules on a labelled set of traces

# docs/configuration.md from the settings definitions (tests/test_docs.py fails when it is stale).
docs: $(STAMP)
	$(BIN)/python -m conflictradar.configdoc

# Robustness (not in CI): at least FUZZ_LINES mutated lines per format family through the real
# ingest; prints per family lines tried, stored, rejected, skipped, unaccounted, crashes.
FUZZ_LINES ?= 1000000
fuzz: $(STAMP)
	$(BIN)/python -u -m tests.fuzz.run --lines $(FUZZ_LINES)

# Endurance (not in CI): `watch` for SOAK_MINUTES at 1,000 lines/s with rotations, 100 SIGKILLs
# and restarts, a webhook receiver down 10 minutes and bad lines mixed in; prints lost, doubled,
# alerts delivered once, RSS.
SOAK_MINUTES ?= 30
soak: $(STAMP)
	$(BIN)/python -u -m tests.soak --minutes $(SOAK_MINUTES)

sample-logs: $(STAMP)
	$(BIN)/python -m conflictradar.sample_logs.generate --out sample_logs/data --seed 42
	$(BIN)/python -m conflictradar.sample_logs.tiered --out sample_logs/tiered --seed 42 --requests 2000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
