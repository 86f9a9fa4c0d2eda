#!/usr/bin/env bash
# The side-by-side comparison in one command (see benches/README.md):
#
#   bash benches/compare.sh [--scale F] [--corpus typical|heavy|both] [--latency 0,20]
#   bash benches/compare.sh --scenario big-folder [--tools mailferry,mbsync] [--scale F]
#   bash benches/compare.sh --scenario transfers [--corpus typical|heavy|both]
#   bash benches/compare.sh --smoke        # CI: all three scenarios, tiny, verified
#
# Installs what it needs where missing (scripts/install-test-deps.sh: Dovecot, mbsync,
# /usr/bin/time; pip: matplotlib for the chart), builds mailferry and the harness in release
# mode, then runs the harness, which writes benches/results/<name>.{md,json,png}: latest.*
# (servers, the default scenario), big-folder.*, transfers.*; --smoke: smoke.*,
# smoke.big-folder.*, smoke.transfers.* (git-ignored). Any other option is passed on to the
# harness (--tools mailferry,mbsync, --name NAME, --out DIR; `compare --help` lists them).
# Set IMAPSYNC=/path/to/imapsync to include imapsync.
# Exit status: 0 when every mailferry run succeeded and verified; 1 when one did not; 2 when
# the harness could not set up (--smoke: the worst of its three runs).
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
smoke=false
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke)
            smoke=true
            shift
            ;;
        -h | --help)
            sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
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
compare=("$target_dir/release/compare" --mailferry "$target_dir/release/mailferry")
if ! $smoke; then
    exec "${compare[@]}" "${args[@]}"
fi

# The smoke: every scenario in a tiny form, every installed tool, verified; each run writes its
# own git-ignored smoke* files and all three run even when one fails. About 1 min in all.
worst=0
run() {
    local status=0
    "${compare[@]}" "$@" "${args[@]}" || status=$?
    if ((status > worst)); then
        worst=$status
    fi
}
# About 200 + 50 messages: both corpora and latencies (today's smoke).
run --scale 0.01 --corpus both --latency 0,20 --name smoke
# One folder of 25 and of 1,000 messages.
run --scenario big-folder --scale 0.005 --name smoke.big-folder
# 200 messages: mbox → IMAP and IMAP → Maildir with their peers and the cp -a floor.
run --scenario transfers --scale 0.01 --name smoke.transfers
if ((worst != 0)); then
    echo "compare.sh --smoke: a run failed (worst exit status $worst)" >&2
fi
exit "$worst"
