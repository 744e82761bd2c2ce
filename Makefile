# unsign-worker: `make test` runs the tests, `make demo` runs a whole sample campaign, `make dev`
# runs the service on this machine until Ctrl-C.
# Each target sets itself up: a .venv with the project installed at the versions pinned in
# requirements.lock (so no release elsewhere changes what CI runs), and a Redis (the one on
# 127.0.0.1:6379 if it answers, else a private redis-server). `make test-lowest` checks the
# lowest versions pyproject.toml allows; `make lock` pins the newest it allows again.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
LOCK := requirements.lock
TEST_DB ?= 13

.PHONY: test test-fast test-lowest demo dev bench bench-campaign lint lock clean

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing unsign-worker and its test tools into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install --disable-pip-version-check -c $(LOCK) -e ".[test]" \
		> $(VENV)/install.log 2>&1 || (tail -40 $(VENV)/install.log; exit 1)
	@touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	@$(BIN)/python -m pip install --disable-pip-version-check -c $(LOCK) -e ".[test,bench]" \
		> $(VENV)/install-bench.log 2>&1 || (tail -40 $(VENV)/install-bench.log; exit 1)
	@touch $(BENCH_STAMP)

test: $(STAMP)
	@test -x /usr/bin/chromium || echo "browser tests skipped: install Chromium with 'sudo apt-get install -y chromium' to run them"
	$(BIN)/python scripts/with_redis.py --db $(TEST_DB) -- $(BIN)/python -m pytest $(PYTEST_ARGS)

# The fast tier: needs Redis, starts no process of the project (worker, Flower, console, the
# emulator's command), a fifth of the property tests' examples (under a minute).
test-fast: $(STAMP)
	$(BIN)/python scripts/with_redis.py --db $(TEST_DB) -- $(BIN)/python -m pytest -m "not slow" \
		--hypothesis-profile=fast $(PYTEST_ARGS)

# The lowest versions pyproject.toml allows (uv's lowest-direct resolution, uv from PyPI, in a
# separate venv), then the fast tier: every lower bound is one that works.
LOWEST := .venv-lowest
test-lowest:
	@test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	@$(LOWEST)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(LOWEST)/bin/uv pip install --quiet --python $(LOWEST)/bin/python --resolution lowest-direct \
		-e ".[test]"
	$(LOWEST)/bin/uv pip list --python $(LOWEST)/bin/python > $(LOWEST)/versions.txt
	$(LOWEST)/bin/python scripts/with_redis.py --db $(TEST_DB) -- $(LOWEST)/bin/python -m pytest \
		-m "not slow" --hypothesis-profile=fast -p no:cacheprovider $(PYTEST_ARGS)

# KEEP=1: keep everything up after the campaign; PLAIN_HTTP=1: plain HTTP, sandbox mode (not TLS)
DEMO_ARGS = $(if $(KEEP),--keep) $(if $(PLAIN_HTTP),--plain-http)
demo: $(STAMP)
	$(BIN)/python scripts/with_redis.py --data .demo/redis -- $(BIN)/unsign-worker demo $(DEMO_ARGS)

# the service on this machine until Ctrl-C: Redis (started when none answers on 127.0.0.1:6379),
# the emulator over HTTPS, workers, Flower, the console; logs and .dev/env in .dev (DEV_ARGS: its
# options, e.g. --count 1000 --seed 7)
dev: $(STAMP)
	$(BIN)/unsign-worker dev $(DEV_ARGS)

# the performance targets with the product's defaults, one table (BENCH_ARGS: e.g. --long-jobs 100000)
bench: $(BENCH_STAMP)
	$(BIN)/python scripts/with_redis.py --db 14 -- $(BIN)/python benchmarks/targets.py $(BENCH_ARGS)

# the pool / batch-size comparison of benchmarks/campaign.py (BENCH_ARGS: its options)
bench-campaign: $(BENCH_STAMP)
	$(BIN)/python scripts/with_redis.py --db 14 -- $(BIN)/python benchmarks/campaign.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check unsign_worker tests
	$(BIN)/lint-imports

# Pin again the newest versions pyproject.toml allows (every extra, any platform, Python 3.11+).
lock: $(STAMP)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip compile pyproject.toml --extra test --extra bench --universal \
		--python-version 3.11 --upgrade --quiet -o $(LOCK)

clean:
	rm -rf $(VENV) $(LOWEST) .demo .dev .pytest_cache
