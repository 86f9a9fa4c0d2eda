#!/usr/bin/env bash
# Crash soak: rounds of random SIGKILLs against `mailferry copy` Dovecot -> Dovecot (variants
# default, --connections 1, machine load, slow server), each round run to completion and
# checked by an independent read-back of both Maildirs. Prints rounds / kills / mid-append
# kills / lost / duplicated / wall time; exits 1 if anything was lost or duplicated.
#
#   bash scripts/crash-soak.sh            # the long soak: 50 rounds, 200 heavy messages
#   bash scripts/crash-soak.sh --short    # CI: 4 rounds (one per variant), 150 typical messages
#   bash scripts/crash-soak.sh --rounds 100 --messages 400 --seed 42   # any crash_soak option
#
# MAILFERRY_SOAK_PROFILE=debug uses a debug build of mailferry (default: release).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${MAILFERRY_SOAK_PROFILE:-release}"
args=()
for a in "$@"; do
  if [ "$a" = "--short" ]; then
    args+=(--rounds 4 --kills 3 --messages 150 --sizes typical)
  else
    args+=("$a")
  fi
done
if [ "$profile" = release ]; then
  cargo build --release --locked -q -p mailferry-cli -p mailferry-benches --bin mailferry --bin crash_soak
  dir=target/release
else
  cargo build --locked -q -p mailferry-cli -p mailferry-benches --bin mailferry --bin crash_soak
  dir=target/debug
fi
exec "$dir/crash_soak" --mailferry "$dir/mailferry" "${args[@]}"
