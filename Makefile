# authgate — see README.md; docs/development.md describes every target.
GO      ?= go
BIN     := bin/authgate
PKGS    := ./...

.PHONY: all build run test test-short bench bench-peers bench-redis bench-go soak fuzz vet fmt clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) .

# The demo: gateway on 127.0.0.1:8080 in front of the built-in mock upstream.
run: build
	./$(BIN) demo

# Every test, with the race detector, in random order (docs links included:
# TestDocsLinks); then the server's again without it, since the race
# detector's build makes its raw socket reads and writes another way.
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -shuffle=on -timeout 10m $(PKGS)
	$(GO) test -shuffle=on -timeout 10m ./server

# The load benchmarks (bench/README.md): the built binary under wrk on
# loopback, pinned to cores; BENCH_DURATION per scenario (default 10s).
# Installs wrk (bench-peers: nginx and HAProxy too) if missing. Results in
# bench/results/latest.{md,json,svg}.
bench:
	bash bench/load.sh

# The same, with nginx and HAProxy doing the gateway's job side by side.
bench-peers:
	bash bench/load.sh --peers

# make bench plus the gateway with its limits in Redis (bench/README.md,
# "Limits in Redis"); installs redis-server if missing.
bench-redis:
	BENCH_REDIS=1 bash bench/load.sh

# Hot-path micro-benchmarks and the in-process end-to-end benchmarks
# (BENCH_COUNT runs of each, default 1).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count $${BENCH_COUNT:-1} ./auth/ ./limiter/ ./logsink/ ./server/ ./bench/

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

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }

fmt:
	gofmt -w .

clean:
	rm -rf bin
