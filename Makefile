# Tessera: build, run, test, benchmark.
# `make test` works on a fresh Debian machine: it installs what the tests need.

CARGO ?= cargo
ARGS ?=
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: build run test deps unit integration bench fmt lint clean perf-quick

build:
	$(CARGO) build --release --workspace

## Build and start the server in the foreground (extra flags: make run ARGS="--port 6380 --threads 2").
run: build
	./target/release/tessera $(ARGS)

## Installs the test dependencies when missing: redis-server, redis-cli and
## redis-benchmark (the reference the differential tests compare against), and
## Debian's python3-redis (redis-py, for the real-client scenarios).
deps:
	@if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import redis' >/dev/null 2>&1; then \
		echo "installing redis-server, redis-tools and python3-redis"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools python3-redis >/dev/null; \
	fi
	@redis-server --version

## Every test: unit, integration, differential against real redis-server, loadgen, perf smoke run.
test: deps
	$(CARGO) test --workspace --no-fail-fast -- --show-output
	bash perf/compare.sh --quick --profile debug

bench:
	$(CARGO) bench --bench hotpaths

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
