#!/usr/bin/env bash
# Fuzz smoke run: every target for FUZZ_SECONDS (default 60) seconds, seeded from the shared
# real-world corpora. Exits non-zero if any target crashes (the input is left in
# fuzz/artifacts/TARGET/), and prints how many inputs each target ran.
#
#   bash fuzz/smoke.sh                       # 60 s per target
#   FUZZ_SECONDS=300 bash fuzz/smoke.sh      # longer
#   FUZZ_TARGETS="mbox_reader" bash fuzz/smoke.sh
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. Seeds are copied from ../shared/corpora at run time, never committed:
# fuzz/corpus and fuzz/artifacts are git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"normalise_headers mbox_reader maildir_names folder_names imap_responses"}
corpora="$root/../shared/corpora"
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never

if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "=== installing cargo-fuzz"
  cargo install cargo-fuzz --locked < /dev/null
fi

if [[ ! -d $corpora ]]; then
  if [[ ${CI:-} == true ]]; then
    echo "error: the shared corpora are missing ($corpora)" >&2
    exit 1
  fi
  echo "note: $corpora is missing; fuzzing from empty corpora"
fi

# seed TARGET PREFIX FILE...: copies each file into the target's corpus, named by its hash as
# libFuzzer names its own finds, with PREFIX (printf escapes) before its bytes.
seed() {
  local target=$1 prefix=$2 dir="fuzz/corpus/$1" f tmp
  shift 2
  mkdir -p "$dir"
  tmp=$(mktemp)
  for f in "$@"; do
    { printf "$prefix"; cat "$f"; } > "$tmp"
    cp "$tmp" "$dir/$(sha1sum < "$tmp" | cut -c1-40)"
  done
  rm -f "$tmp"
}

# seed_text TARGET LINE...: one corpus entry per line of text.
seed_text() {
  local target=$1 dir="fuzz/corpus/$1" line
  shift
  mkdir -p "$dir"
  for line in "$@"; do
    printf '%s' "$line" > "$dir/$(printf '%s' "$line" | sha1sum | cut -c1-40)"
  done
}

echo "=== seeding corpora"
messages=()
mboxes=("$root/examples/data/sample.mbox")
maildir_names=()
if [[ -d $corpora ]]; then
  # Messages up to 64 KiB: large ones slow every execution down and add little.
  mapfile -t messages < <(find "$corpora" -type f -size -64k ! -name '*.json' ! -name '*.md' \
    ! -name '.*' | sort)
  mapfile -t -O 1 mboxes < <(find "$corpora" -type f -name '*.mbox' | sort)
  mapfile -t maildir_names < <(find "$corpora" -path '*maildir*' \( -type f -o -type d \) \
    -printf '%f\n' | sort -u)
fi
seed normalise_headers '' "${messages[@]}"
# mbox_reader: byte 0 picks the mode (even: read the rest as an mbox file, odd: round trip).
seed mbox_reader '\000' "${mboxes[@]}"
seed mbox_reader '\002From a@b Sat Jan  3 01:05:34 1996\n' "${messages[@]:0:200}"
seed mbox_reader '\001' "${messages[@]:200:100}"
folder_names=("INBOX" "Sent Items" "[Gmail]/Sent Mail" "Envoy&AOk-s" "&AMk-l&AOk-ments/Envoy&AOk-s"
  "~peter/mail/&U,BTFw-/&ZeVnLIqe-" "Tom &- Jerry" "Archive/2020" "INBOX/Trash" "&Jjo-" "a&b"
  "../../etc" ".hidden" "cur" "dovecot-keywords" "100%" "Gesendete Objekte")
seed_text maildir_names "${maildir_names[@]}" "${folder_names[@]}" "0 \$Junk
1 Work
2 NonJunk" "1.M2.kurkku,S=1355,W=1394:2,DFPRSTab"
seed_text folder_names "${folder_names[@]}"

echo "=== building the targets"
cargo fuzz build < /dev/null

# Longest input libFuzzer builds: large enough for multi-part messages and several mbox
# messages, small enough to keep thousands of executions a second.
declare -A max_len=([normalise_headers]=65536 [mbox_reader]=16384)

mkdir -p fuzz/artifacts/logs
status=0
summary=()
for target in $targets; do
  log="fuzz/artifacts/logs/$target.log"
  echo "=== $target: ${seconds}s (log: $log)"
  started=$(date +%s)
  # -rss_limit_mb / -malloc_limit_mb turn unbounded allocations into findings; -timeout marks
  # an input that takes longer than 10 s (a hang) as one.
  if cargo fuzz run "$target" < /dev/null > "$log" 2>&1 -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len="${max_len[$target]:-4096}" -print_final_stats=1; then
    result=ok
  else
    result=CRASH
    status=1
    tail -n 40 "$log"
  fi
  execs=$(grep -oE '^stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' \
    || grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || echo '?')
  coverage=$(grep -oE '^#[0-9]+.*cov: [0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+' \
    || echo 'cov: ?')
  line="$target: $result, ${execs:-?} executions, $coverage, $(($(date +%s) - started))s"
  echo "$line"
  summary+=("$line")
done

echo
echo "=== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [[ $status -ne 0 ]]; then
  echo "crash inputs:"
  find fuzz/artifacts -type f ! -path '*/logs/*' | sed 's/^/  /'
fi
exit $status
