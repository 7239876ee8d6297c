# authgate — see README.md.
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

# Every test, with the race detector, in random order; then the server's
# again without it, since the race detector's build makes its socket reads
# and writes another way (server/rawio.go).
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

# make bench plus the gateway with its limits in Redis (issue 6); installs
# redis-server if missing.
bench-redis:
	BENCH_REDIS=1 bash bench/load.sh

# Hot-path micro-benchmarks and the in-process end-to-end benchmarks
# (BENCH_COUNT runs of each, default 1; `make bench` before issue 4).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count $${BENCH_COUNT:-1} ./auth/ ./limiter/ ./logsink/ ./server/ ./bench/

# Mixed traffic against the binary for SOAK_DURATION (default 10m): RSS,
# goroutines and fds flat, one log line per request, no 5xx.
soak:
	bash bench/soak.sh

# Each fuzz target for FUZZTIME (default 30s); corpora live in */testdata/fuzz.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseLine$$' -fuzztime $(FUZZTIME) ./auth/
	$(GO) test -run '^$$' -fuzz '^FuzzParseAuthorization$$' -fuzztime $(FUZZTIME) ./auth/
	$(GO) test -run '^$$' -fuzz '^FuzzParseUpstreams$$' -fuzztime $(FUZZTIME) ./server/
	$(GO) test -run '^$$' -fuzz '^FuzzParseTrustedProxies$$' -fuzztime $(FUZZTIME) ./server/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckRedisURL$$' -fuzztime $(FUZZTIME) ./limiter/

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }

fmt:
	gofmt -w .

clean:
	rm -rf bin
