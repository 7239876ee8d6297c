#!/usr/bin/env bash
# Soak test (bench/README.md, "Soak"): builds authgate, then runs
# bench/cmd/soak against the binary for SOAK_DURATION (default 10m) of mixed
# traffic on loopback and checks RSS, goroutines and fds stay flat, that the
# access log has one line per request, and that no request got a 5xx. The
# report goes to stdout and bench/results/soak-latest.md. Exit 1 if a check
# fails.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin bench/results
go build -trimpath -o bin/authgate .
exec go run ./bench/cmd/soak -bin bin/authgate -duration "${SOAK_DURATION:-10m}" \
  -workers "${SOAK_WORKERS:-16}" -out bench/results/soak-latest.md
