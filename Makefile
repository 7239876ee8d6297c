# authgate — see README.md.
GO      ?= go
BIN     := bin/authgate
PKGS    := ./...

.PHONY: all build run test test-short bench bench-go soak fuzz vet fmt clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) .

# The demo: gateway on 127.0.0.1:8080 in front of the built-in mock upstream.
run: build
	./$(BIN) demo

# Every test, with the race detector, in random order.
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -shuffle=on -timeout 10m $(PKGS)

# Hot-path micro-benchmarks and the in-process end-to-end benchmarks.
bench: bench-go

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

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }

fmt:
	gofmt -w .

clean:
	rm -rf bin
