# monitor: the two commands are `make run` and `make test`; the rest are for developers.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
RUN_DIR ?= $(CURDIR)/.run
INFLUX_PORTS ?= 18086,18087,18088
API_URL ?= http://127.0.0.1:8186
CORPUS ?= $(CURDIR)/../shared/conformance/line-protocol-corpus/corpus.json

.PHONY: run stop deps test unit conformance bench bench-micro bench-write bench-query bench-rules lint fmt

## run: install what is missing, start three InfluxDB shards and monitor-api, say where to point agents
run: deps
	$(CARGO) build --release --bins
	integration/influxd-cluster.sh start --dir $(RUN_DIR)/influxd --ports $(INFLUX_PORTS)
	integration/monitor-api.sh start --dir $(RUN_DIR) --config config/monitor-api.yaml --binary target/release/monitor-api
	@echo
	@echo "Three InfluxDB 1.6.7 shards:  $$(tr , ' ' <<< '$(INFLUX_PORTS)' | sed 's/[0-9]*/http:\/\/127.0.0.1:&/g')"
	@echo "monitor-api:                  $(API_URL)   (logs: $(RUN_DIR)/monitor-api.log, data: ./data/api)"
	@echo
	@echo "Point your agents at $(API_URL) as if it were InfluxDB (v1 /write or v2 /api/v2/write)."
	@echo "Write a point, then read it back from every shard of its group:"
	@echo "  curl -i -XPOST '$(API_URL)/write?db=demo' --data-binary 'mem,index=cluster1,host=host1 used=93'"
	@echo "  for p in $$(tr , ' ' <<< '$(INFLUX_PORTS)'); do curl -s \"http://127.0.0.1:\$$p/query?db=demo\" --data-urlencode 'q=SELECT * FROM mem'; echo; done"
	@echo "Replica state:                ./target/release/monitorctl replicas"
	@echo "Stop everything:              make stop"

## stop: stop what `make run` started
stop:
	-integration/monitor-api.sh stop --dir $(RUN_DIR)
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

## bench: criterion benchmarks and the end-to-end write load test (figures go to BENCHMARKS.md)
bench: bench-micro bench-write bench-rules

bench-micro:
	$(CARGO) bench --bench line_protocol --bench queue

## bench-write: wrk -> {nginx sink, influxd, monitor-api RF=3 -> sinks / influxd}; see benches/load/
bench-write:
	integration/install-deps.sh influxdb wrk nginx
	$(CARGO) build --release --bin monitor-api
	benches/load/run.sh $(BENCH_WRITE_ARGS)

## bench-query: the same queries directly to one influxd and through monitor-api; see benches/query/
bench-query:
	integration/install-deps.sh influxdb
	$(CARGO) build --release --bin monitor-api
	benches/query/run.sh $(BENCH_QUERY_ARGS)

## bench-rules: rules engine cost with 0, 100 and 1,000 rules (criterion) and end to end with alert delay
bench-rules:
	$(CARGO) bench --bench rules
	$(CARGO) bench --bench rules_e2e

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt
