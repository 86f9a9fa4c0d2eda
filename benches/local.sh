#!/usr/bin/env bash
# mailferry on local stores, in one command (see benches/README.md, "Local stores"):
#
#   bash benches/local.sh [--scale F]     # 20,000 messages × F: Maildir → Maildir (mailferry
#                                         # and mbsync), mbox → Maildir; benches/results/local.md
#   bash benches/local.sh --big           # also: peak RSS of reading a 2 GB mbox (--big-gb G)
#   bash benches/local.sh --smoke         # CI: 200 messages, every tool, verified
#
# Installs what it needs where missing (scripts/install-test-deps.sh: mbsync, /usr/bin/time),
# builds mailferry and the harness in release mode, then runs target/release/local. Other
# options go to the harness (--work DIR, --keep, --out DIR, --name NAME; `local --help`).
# Exit status: 0 when every mailferry run succeeded and verified; 1 when one did not; 2 when
# the harness could not set up.
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke)
            # 200 messages: start-up dominated, but every path runs and is verified.
            args+=(--scale 0.01 --name local-smoke)
            shift
            ;;
        -h | --help)
            sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            args+=("$1")
            shift
            ;;
    esac
done

# mbsync and /usr/bin/time (and the Dovecot the other benches need), only where missing.
bash scripts/install-test-deps.sh
cargo build --release -p mailferry-cli -p mailferry-benches
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/local" --mailferry "$target_dir/release/mailferry" "${args[@]}"
