# monitor: the two commands are `make run` and `make test`; the rest are for developers.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
RUN_DIR ?= $(CURDIR)/.run
INFLUX_PORTS ?= 18086,18087,18088
CORPUS ?= $(CURDIR)/../shared/conformance/line-protocol-corpus/corpus.json

.PHONY: run stop deps test unit conformance bench lint fmt

## run: install what is missing, start a local three-shard InfluxDB cluster, say where to point agents
run: deps
	$(CARGO) build --release --bins
	integration/influxd-cluster.sh start --dir $(RUN_DIR)/influxd --ports $(INFLUX_PORTS)
	@echo
	@echo "Three InfluxDB 1.6.7 shards are up (data under $(RUN_DIR)/influxd):"
	@for p in $$(tr , ' ' <<< "$(INFLUX_PORTS)"); do echo "  http://127.0.0.1:$$p"; done
	@echo "Lint your agents' output:  ./target/release/monitorctl lp parse --precision ns FILE"
	@echo "monitor-api (the write path) is not built yet; see README.md, 'Status'."
	@echo "Stop everything with:       make stop"

## stop: stop what `make run` started
stop:
	integration/influxd-cluster.sh stop --dir $(RUN_DIR)/influxd

## deps: install the system packages tests and `make run` need (InfluxDB, an SMTP server)
deps:
	integration/install-deps.sh influxdb smtp

## test: lint, then every test, including those against real influxd processes
test: deps lint
	@test -f "$(CORPUS)" || { echo "conformance corpus not found at $(CORPUS): the shared/ folder must sit beside this checkout (or set MONITOR_CORPUS)"; exit 1; }
	$(CARGO) test --no-fail-fast

## conformance: the InfluxData line-protocol corpus against our parser
conformance:
	MONITOR_CORPUS="$(CORPUS)" $(CARGO) test --release --test conformance

## bench: criterion benchmarks (figures go to BENCHMARKS.md)
bench:
	$(CARGO) bench --bench line_protocol

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt
