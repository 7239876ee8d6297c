# authgate — see README.md; docs/development.md describes every target.
GO      ?= go
BIN     := bin/authgate
PKGS    := ./...

.PHONY: all build run test lint bench bench-peers bench-redis bench-streams bench-go soak fuzz fmt clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) .

# The demo: gateway on 127.0.0.1:8080 in front of two built-in mock upstreams.
run: build
	./$(BIN) demo

# Formatting, vet and staticcheck (lint), then every test with the race
# detector, in random order (docs links and the layout rules included),
# then the allocation tests, which the race detector's build cannot run.
test: lint
	$(GO) test -race -shuffle=on -timeout 10m $(PKGS)
	$(GO) test -shuffle=on -run Alloc $(PKGS)

# gofmt, go vet and staticcheck; staticcheck is installed at the version
# below (2026.2.2) into $(GOBIN) (default ~/go/bin) if missing.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK ?= $(shell command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck)
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || echo .))" || { gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)
	@test -x "$(STATICCHECK)" || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(STATICCHECK) $(PKGS)

# The load benchmarks (bench/README.md): the built binary under wrk on
# loopback, pinned to cores; BENCH_DURATION per scenario (default 10s).
# Installs wrk (bench-peers: nginx and HAProxy too) if missing. Results in
# bench/results/latest.{md,json,svg}.
bench:
	bash bench/load.sh

# The same, with nginx and HAProxy doing the gateway's job side by side.
bench-peers:
	bash bench/load.sh --peers

# Only the streams-at-scale and idle-clients scenarios, through the gateway,
# nginx and HAProxy (bench/README.md, "Streams at scale"), added to
# bench/results/latest.*; BENCH_STREAMS (default 1000,5000,10000).
bench-streams:
	bash bench/load.sh --peers -streams-only

# make bench plus the gateway with its limits in Redis (bench/README.md,
# "Limits in Redis"); installs redis-server if missing.
bench-redis:
	BENCH_REDIS=1 bash bench/load.sh

# Hot-path micro-benchmarks and the in-process end-to-end benchmarks
# (BENCH_COUNT runs of each, default 1).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count $${BENCH_COUNT:-1} ./auth/ ./limiter/ ./logsink/ ./server/ ./internal/openai/ ./bench/

# Mixed traffic against the binary for SOAK_DURATION (default 10m): RSS,
# goroutines and fds flat, one log line per request, no 5xx.
soak:
	bash bench/soak.sh

# Every fuzz target of every package, each for FUZZTIME (default 30s);
# corpora live in */testdata/fuzz.
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

fmt:
	gofmt -w .

clean:
	rm -rf bin
