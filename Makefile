# Fleetpulse. Quick start: `make run` (a local fleet) and `make test`.

GO        ?= go
# Everything that links Thanos is built with slicelabels, as Thanos itself is
# (its zero-copy label conversion assumes that layout).
GOTAGS    ?= slicelabels
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS   := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) \
             -X $(VERSION_PKG).Branch=$(BRANCH) -X $(VERSION_PKG).BuildUser=$(USER) \
             -X $(VERSION_PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT ?= 30m
BENCH     ?= .
BENCHTIME ?= 3x
FUZZTIME  ?= 10s

.PHONY: all build deps testbed s3server run down test fuzz bench lint fmt generate clean

all: build

## build: the fleetpulse and fleetpulse-agent binaries, into bin/
build:
	$(GO) build -tags $(GOTAGS) -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## deps: Debian's prometheus (with promtool) and prometheus-alertmanager, which tests run for real; installed when missing
deps:
	./.ci/install-debian-deps

## testbed: build (once) the test bed's Kubernetes, etcd, kwok and kubectl binaries into .cache/testbed
testbed: build
	./bin/fleetpulse dev build

## run: start the local fleet (hub control plane + 3 managed clusters); Ctrl-C stops it
run: build
	./bin/fleetpulse dev up

## down: stop a local fleet started by `make run` in another terminal
down: build
	./bin/fleetpulse dev down

## s3server: build (once) the S3 server of the bucket tests, SeaweedFS's weed from testbed/s3tools, into .cache/s3server
s3server:
	$(GO) run ./testbed/cmd/s3server

## test: unit, integration and end-to-end tests (builds the test bed and the S3 server first)
test: deps testbed s3server
	$(GO) test -tags $(GOTAGS) -count=1 -timeout $(TEST_TIMEOUT) ./...

## fuzz: every fuzz target of the repository for FUZZTIME each (default 10s); fails on a crasher, which Go writes to the package's testdata/fuzz
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) GOTAGS=$(GOTAGS) ./.ci/fuzz

## bench: the benchmarks, with their peers where they have one: the agent vs a contrib Collector (test/bench),
## the hub's ingest vs VictoriaMetrics, Thanos receive and Prometheus v3 on every workload shape (peers built once into .cache/bench;
## FLEETPULSE_BENCH_PROFILE=<dir> keeps CPU and heap profiles) and its dashboard queries (test/bench/ingest),
## and one hub registering a simulated fleet of 10,000 clusters (test/bench, FleetRegistration; FLEETPULSE_FLEET_CLUSTERS=N for another size);
## the scale-out benchmark (ScaleOut: one hub against three replicas in a ring) runs only with FLEETPULSE_SCALEOUT_CLUSTERS=N set
# -p 1: one package's benchmarks at a time, so that no two measurements share the cores.
bench: deps testbed
	$(GO) test -tags $(GOTAGS) -p 1 -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -timeout $(TEST_TIMEOUT) ./...

## lint: gofmt, go vet and staticcheck over both modules
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags $(GOTAGS) ./...
	cd testbed/tools && $(GO) vet ./...
	$(GO) run $(STATICCHECK) -tags $(GOTAGS) ./...
	cd testbed/tools && $(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## generate: the Collector components' metadata code (type, stability, own telemetry, lifecycle tests) from each
## metadata.yaml, with mdatagen v0.142.0 (a tool of the root module, like the Collector it matches)
generate:
	$(GO) generate ./receiver/... ./processors/... ./exporters/... ./extensions/...

## clean: remove built binaries and the test-bed cache
clean:
	rm -rf bin .cache
