#!/usr/bin/env bash
# The side-by-side comparison in one command (see benches/README.md):
#
#   bash benches/compare.sh [--scale F] [--corpus typical|heavy|both] [--latency 0,20]
#   bash benches/compare.sh --smoke        # CI: tiny corpora, every installed tool, verified
#
# Installs what it needs where missing (scripts/install-test-deps.sh: Dovecot, mbsync,
# /usr/bin/time; pip: matplotlib for the chart), builds mailferry and the harness in release
# mode, then runs the harness, which writes benches/results/latest.{md,json,png}
# (--smoke: smoke.*). Any other option is passed on to the
# harness (--tools mailferry,mbsync, --name NAME, --out DIR; `compare --help` lists them).
# Set IMAPSYNC=/path/to/imapsync to include imapsync.
# Exit status: 0 when every mailferry run succeeded and verified; 1 when one did not; 2 when
# the harness could not set up.
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke)
            # About 200 + 50 messages: every tool, both corpora and latencies, well under 2 min.
            args+=(--scale 0.01 --corpus both --latency 0,20 --name smoke)
            shift
            ;;
        -h | --help)
            sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            args+=("$1")
            shift
            ;;
    esac
done

# Dovecot (with doveadm), openssl, mbsync and /usr/bin/time, installed only where missing.
bash scripts/install-test-deps.sh
# The chart is optional: without matplotlib the harness still writes the table.
if ! python3 -c 'import matplotlib' >/dev/null 2>&1; then
    python3 -m pip install --quiet matplotlib >/dev/null 2>&1 ||
        echo "compare.sh: could not install matplotlib; no chart will be drawn" >&2
fi

cargo build --release -p mailferry-cli -p mailferry-benches
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/compare" --mailferry "$target_dir/release/mailferry" "${args[@]}"
