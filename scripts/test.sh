#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need (Dovecot, Cyrus, mbsync)
# where missing, then runs every test in the workspace. IMAP tests start their own Dovecot and
# Cyrus instances.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --workspace --locked --no-fail-fast "$@"
