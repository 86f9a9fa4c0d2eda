#!/usr/bin/env bash
# The instruction-count regression gate. Builds benches/icount (release), runs each measured path
# under callgrind, prints a table (instructions, per item, per KB, baseline, delta) and fails when
# a path is more than 5% above benches/icount/baseline.json.
#
#   bash benches/icount/run.sh            # compare with the baseline (exit 1 on a regression)
#   bash benches/icount/run.sh --update   # rewrite the baseline with this machine's counts
#   bash benches/icount/run.sh --threshold=2   # another limit, in percent
#
# Why instruction counts: on a shared machine wall-clock benches move by tens of percent; counts
# under callgrind repeat to a few hundredths of a percent, so a 5% limit catches real changes.
# Exit status: 0 pass, 1 regression (or a changed workload: re-run with --update), 2 set-up error.
# The callgrind outputs stay in $ICOUNT_OUT (default /tmp/mailferry-icount) for
# `callgrind_annotate --inclusive=yes $ICOUNT_OUT/PATH.callgrind`. $VALGRIND overrides the
# valgrind binary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
update=()
threshold=5
for arg in "$@"; do
    case $arg in
        --update) update=(--update) ;;
        --threshold=*) threshold=${arg#--threshold=} ;;
        -h | --help)
            sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "run.sh: unknown argument $arg (expected --update, --threshold=N)" >&2
            exit 2
            ;;
    esac
done

valgrind=${VALGRIND:-valgrind}
if ! command -v "$valgrind" >/dev/null 2>&1; then
    echo "run.sh: $valgrind not found; the gate counts instructions with valgrind's callgrind." >&2
    echo "  Debian/Ubuntu: apt-get install -y --no-install-recommends valgrind" >&2
    exit 2
fi

cd "$root"
echo "building benches/icount (release)..."
cargo build --release --quiet -p mailferry-benches --example icount
bin=${CARGO_TARGET_DIR:-$root/target}/release/examples/icount
if [[ ! -x $bin ]]; then
    echo "run.sh: the build did not produce $bin" >&2
    exit 2
fi

out=${ICOUNT_OUT:-/tmp/mailferry-icount}
mkdir -p "$out"
export ICOUNT_TOOLCHAIN="$("$valgrind" --version); $(rustc --version)"

for path in prepare copier imap; do
    # Collection is on only inside the measured function. The copier path also switches it off
    # inside CanonicalItem::prepare (the prepare path's subject), leaving the pipeline's own cost.
    toggles=(--toggle-collect="*icount_measure_$path")
    if [[ $path == copier ]]; then
        toggles+=(--toggle-collect="mailferry_core::item::CanonicalItem::prepare")
    fi
    if ! "$valgrind" --tool=callgrind --collect-atstart=no "${toggles[@]}" \
        --callgrind-out-file="$out/$path.callgrind" \
        "$bin" run "$path" >"$out/$path.json" 2>"$out/$path.log"; then
        echo "run.sh: the $path workload failed under callgrind; its log:" >&2
        tail -n 30 "$out/$path.log" >&2
        exit 2
    fi
done

"$bin" report --dir "$out" --baseline "$here/baseline.json" --threshold="$threshold" "${update[@]}"
