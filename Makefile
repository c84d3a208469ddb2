# monitor: the two commands are `make run` and `make test`; the rest are for developers.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
RUN_DIR ?= $(CURDIR)/.run
INFLUX_PORTS ?= 18086,18087,18088
API_URL ?= http://127.0.0.1:8186
AM_URL ?= http://127.0.0.1:9193
SMTP_PORT ?= 2525
CORPUS ?= $(CURDIR)/../shared/conformance/line-protocol-corpus/corpus.json

.PHONY: run stop deps test unit conformance release-pgo bench bench-micro bench-write bench-query bench-rules bench-alerts lint fmt

## run: install what is missing, start three InfluxDB shards, monitor-api, the alert manager and an SMTP sink
run: deps
	$(CARGO) build --release --bins
	integration/influxd-cluster.sh start --dir $(RUN_DIR)/influxd --ports $(INFLUX_PORTS)
	integration/monitor-api.sh start --dir $(RUN_DIR) --config config/monitor-api.yaml --binary target/release/monitor-api
	integration/smtp-sink.sh start --dir $(RUN_DIR)/smtp-sink --port $(SMTP_PORT)
	integration/alert-manager.sh start --dir $(RUN_DIR) --config config/alert-manager.yaml --binary target/release/monitor-alert-manager
	@echo
	@echo "Three InfluxDB 1.6.7 shards:  $$(tr , ' ' <<< '$(INFLUX_PORTS)' | sed 's/[0-9]*/http:\/\/127.0.0.1:&/g')"
	@echo "monitor-api:                  $(API_URL)   (logs: $(RUN_DIR)/monitor-api.log, data: ./data/api)"
	@echo
	@echo "Point your agents at $(API_URL) as if it were InfluxDB (v1 /write or v2 /api/v2/write)."
	@echo "Write a point, then read it back from every shard of its group:"
	@echo "  curl -i -XPOST '$(API_URL)/write?db=demo' --data-binary 'mem,index=cluster1,host=host1 used=93'"
	@echo "  for p in $$(tr , ' ' <<< '$(INFLUX_PORTS)'); do curl -s \"http://127.0.0.1:\$$p/query?db=demo\" --data-urlencode 'q=SELECT * FROM mem'; echo; done"
	@echo "Replica state:                ./target/release/monitorctl replicas"
	@echo "monitor-alert-manager:        $(AM_URL)   (logs: $(RUN_DIR)/alert-manager.log, data: ./data/alert-manager)"
	@echo "SMTP sink:                    127.0.0.1:$(SMTP_PORT)   (mails: $(RUN_DIR)/smtp-sink/mail/*.eml)"
	@echo "Send an alert and watch the mail arrive (group_wait 10s):"
	@echo "  curl -s -XPOST $(AM_URL)/api/v1/alerts -H 'Content-Type: application/json' -d '[{\"name\":\"HighMem\",\"index\":\"cluster1\",\"host\":\"host1\",\"severity\":\"critical\",\"at\":\"2026-11-21T12:00:00Z\"}]'"
	@echo "  ls $(RUN_DIR)/smtp-sink/mail/; ./target/release/monitorctl issued"
	@echo "Stop everything:              make stop"

## stop: stop what `make run` started
stop:
	-integration/alert-manager.sh stop --dir $(RUN_DIR)
	-integration/smtp-sink.sh stop --dir $(RUN_DIR)/smtp-sink
	-integration/monitor-api.sh stop --dir $(RUN_DIR)
	integration/influxd-cluster.sh stop --dir $(RUN_DIR)/influxd

## deps: install the system packages tests and `make run` need (InfluxDB, an SMTP server, Prometheus and amtool)
deps:
	integration/install-deps.sh influxdb smtp prometheus amtool

## test: lint, then every test, including those against real influxd processes
test: deps lint
	@test -f "$(CORPUS)" || { echo "conformance corpus not found at $(CORPUS): the shared/ folder must sit beside this checkout (or set MONITOR_CORPUS)"; exit 1; }
	$(CARGO) test --no-fail-fast

## conformance: the InfluxData line-protocol corpus against our parser
conformance:
	MONITOR_CORPUS="$(CORPUS)" $(CARGO) test --release --test conformance

## release-pgo: a profile-guided release build of monitor-api (target/pgo/build/release/monitor-api)
release-pgo:
	integration/pgo/build.sh

## bench: every benchmark: micro (criterion), write load, query, rules and alert manager (figures go to BENCHMARKS.md)
bench: bench-micro bench-write bench-query bench-rules bench-alerts

bench-micro:
	$(CARGO) bench --bench line_protocol --bench queue

## bench-write: wrk -> {nginx sink, influxd, monitor-api RF=3 -> sinks / influxd}; see benches/load/
bench-write:
	integration/install-deps.sh influxdb wrk nginx
	$(CARGO) build --release --bin monitor-api
	benches/load/run.sh $(BENCH_WRITE_ARGS)

## bench-query: the same queries directly to one influxd and through monitor-api; see benches/query/
bench-query:
	integration/install-deps.sh influxdb nginx
	$(CARGO) build --release --bin monitor-api
	benches/query/run.sh $(BENCH_QUERY_ARGS)

## bench-rules: rules engine cost with 0, 100 and 1,000 rules (criterion) and end to end with alert delay
bench-rules:
	$(CARGO) bench --bench rules
	$(CARGO) bench --bench rules_e2e

## bench-alerts: alerts/s through the alert manager's pipeline (redb, outbox, HTTP) and receipt -> webhook latency
bench-alerts:
	$(CARGO) bench --bench alertmanager

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt
