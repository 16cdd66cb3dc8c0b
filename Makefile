# healthrouter — build, test and measure.
# `make test` is the whole suite (CI runs it through .ci/run).

GO      ?= go
BIN     := bin/healthrouter
PKGS    := ./...

.PHONY: all build image run test test-short vet fmt fmt-check bench fuzz headline scenarios clean

all: fmt-check vet build test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/healthrouter

# The container image, stamped with the checkout's version (the image build
# has no .git of its own).
image:
	docker build --build-arg VERSION="$$(git describe --tags --always --dirty 2>/dev/null || echo unknown)" -t healthrouter .

run:
	$(GO) run ./cmd/healthrouter serve

# The whole suite: unit, HTTP, crash and end-to-end tests, fuzz seeds included.
# The end-to-end tests replay incidents at a fixed pace through two
# race-built instances and Prometheus: they run on their own afterwards,
# not beside every other package's tests competing for the cores.
test: fmt-check vet test-deps
	HEALTHROUTER_E2E=required $(GO) test -race -count=1 -timeout 20m -skip 'EndToEnd' $(PKGS)
	HEALTHROUTER_E2E=required $(GO) test -race -count=1 -timeout 20m -run 'EndToEnd' ./cmd/healthrouter

# What the suite needs beyond Go, installed from Debian's packages when
# missing (as root, or with sudo that needs no password): Prometheus for the
# end-to-end tests (only its binary is used; on a machine with systemd the
# package also starts a service on :9090, which the tests leave alone), and
# a C compiler, without which Go turns cgo off and -race cannot build.
.PHONY: test-deps
test-deps:
	@pkgs=; \
	command -v prometheus >/dev/null 2>&1 || pkgs="prometheus"; \
	[ "$$($(GO) env CGO_ENABLED)" = 1 ] || pkgs="$$pkgs gcc libc6-dev"; \
	if [ -n "$$pkgs" ]; then \
		sudo=; \
		if [ "$$(id -u)" -ne 0 ]; then \
			command -v sudo >/dev/null 2>&1 || { echo "the tests need Debian packages:$$pkgs; run as root or install them" >&2; exit 1; }; \
			sudo="sudo -n"; \
		fi; \
		echo "installing Debian packages the tests need:$$pkgs"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$pkgs; \
	fi

# Only the end-to-end tests: every scenario through the binary and Prometheus,
# a single instance and an HA pair.
.PHONY: e2e
e2e: test-deps
	HEALTHROUTER_E2E=required $(GO) test -race -count=1 -run 'EndToEnd' ./cmd/healthrouter

# Everything but the slow end-to-end and crash tests.
test-short:
	$(GO) test -short -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Benchmarks (figures, never timed tests). `make bench` measures what users
# care about, on the real binary over loopback: ingest (events/s, p99 at half
# the maximum rate, server CPU and RSS), memory per check and start-up at 1M
# checks, and the reconcile figures; a table on stdout and JSON in
# $(BENCH_JSON). BENCH_BASELINE=old.json adds each figure's change. The
# machine is shared: check `uptime` first, figures are as quiet as it is.
LOADGEN        := bin/healthrouter-load
BENCH_JSON     ?= bin/bench.json
BENCH_BASELINE ?=
# --strict: a figure that misses its target fails the target (exit 3); a
# missed ingest target also leaves a CPU profile under bin/scratch/profiles.
BENCH_FLAGS    ?= --strict
COMPARE_FLAGS  ?= --strict
SOAK_FLAGS     ?= --strict
SOAK_DURATION  ?= 10m
ALERTMANAGER   ?= /usr/bin/prometheus-alertmanager
SUDO           := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: loadgen bench-micro bench-compare alertmanager soak

loadgen:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(LOADGEN) ./cmd/healthrouter-load

bench: build loadgen
	$(GO) test -run '^$$' -bench 'BenchmarkReconcile100Regions' -count 3 ./pkg/grafana > bin/bench-reconcile.txt || { cat bin/bench-reconcile.txt; exit 1; }
	$(LOADGEN) bench --server $(BIN) --reconcile bin/bench-reconcile.txt --json $(BENCH_JSON) \
		$(if $(BENCH_BASELINE),--baseline $(BENCH_BASELINE)) $(BENCH_FLAGS)

# Every micro-benchmark of the library packages.
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./pkg/...

# The same load against Debian's Alertmanager (installed when missing) in
# the same run, alternating runs: both rates and the ratio.
bench-compare: build loadgen alertmanager
	$(LOADGEN) compare --server $(BIN) --alertmanager $(ALERTMANAGER) --json bin/bench-compare.json $(COMPARE_FLAGS)

alertmanager:
	@command -v $(ALERTMANAGER) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager; }

# Steady duplicate traffic for $(SOAK_DURATION); the server's memory must
# stay flat. Not part of `make bench`.
soak: build loadgen
	$(LOADGEN) soak --server $(BIN) --duration $(SOAK_DURATION) --json bin/soak.json $(SOAK_FLAGS)

# Run the decoder fuzzer for a while (CI runs its seed corpus in `make test`).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./pkg/ingest

# The README's headline table: every scenario replayed, direct routing beside
# healthrouter (a test fails while the README disagrees).
headline:
	$(GO) run ./pkg/scenario/headline -w

# Regenerate testdata/scenarios from pkg/scenario (a test fails while stale).
scenarios:
	$(GO) generate ./pkg/scenario

clean:
	rm -rf bin
