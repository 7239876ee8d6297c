#!/usr/bin/env bash
# The load benchmark: `make bench` runs it, `make bench-peers`
# runs it with --peers. It installs what it lacks from Debian packages (wrk;
# nginx and HAProxy with --peers), builds bin/authgate and the benchmark's
# helpers, then runs bench/cmd/loadbench pinned to the load's core, which
# starts every server, runs the scenarios, stops everything it started and
# writes bench/results/latest.{md,json,svg}. BENCH_DURATION (default 10s)
# is the measured time per scenario and repeat; bench/README.md has the
# method and the other settings.
set -euo pipefail
cd "$(dirname "$0")/.."

peers=false
for arg in "$@"; do
  [[ $arg == --peers || $arg == -peers ]] && peers=true
done

# Commands this run needs, and the Debian package of each.
declare -A pkg=([wrk]=wrk [taskset]=util-linux [curl]=curl)
if $peers; then
  pkg[nginx]=nginx
  pkg[haproxy]=haproxy
fi
if [[ -n ${BENCH_REDIS:-} ]]; then
  pkg[redis-server]=redis-server
fi
missing=()
for cmd in "${!pkg[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]} from Debian packages" >&2
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { echo "bench: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  # The nginx and haproxy packages start their services at install where
  # an init system lets them; a policy-rc.d that says no keeps port 80 and
  # the machine as they were. It is removed afterwards if we put it there.
  guard=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$guard" >/dev/null
    "${sudo[@]}" chmod +x "$guard"
    trap '"${sudo[@]}" rm -f "$guard"' EXIT
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ -n $guard ]]; then
    "${sudo[@]}" rm -f "$guard"
    trap - EXIT
  fi
fi

GO=${GO:-go}
mkdir -p bin bench/results
"$GO" build -trimpath -o bin/authgate .
"$GO" build -trimpath -o bin/bench-ceiling ./bench/cmd/ceiling
"$GO" build -trimpath -o bin/bench-nolog ./bench/cmd/nolog
"$GO" build -trimpath -o bin/bench-eventsrv ./bench/cmd/eventsrv
"$GO" build -trimpath -o bin/loadbench ./bench/cmd/loadbench

# loadbench itself (the fixed-rate and streaming clients) runs on the
# load's core; it pins the servers itself.
# On one core there is nothing to pin.
if (($(nproc) < 2)); then
  export BENCH_SERVER_CPU= BENCH_LOAD_CPU=
fi
load_cpu=${BENCH_LOAD_CPU-1}
if [[ -n $load_cpu ]]; then
  exec taskset -c "$load_cpu" bin/loadbench "$@"
fi
exec bin/loadbench "$@"
