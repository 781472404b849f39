#!/bin/sh
# Runs every fuzz target (or those named) for SECONDS each, one after the other at the lowest CPU priority,
# and prints per target: executions, exec/s, final coverage (libFuzzer's `cov`/`ft`) and crashes found.
# Installs cargo-fuzz when it is missing. Seeds: testdata/fuzz-seeds/<target>, and seeds-shared/<target> made
# from the shared corpus by shared_seeds.py when ../shared is there; new inputs go to
# corpus/<target> (git-ignored), crashes to artifacts/<target>.
#
#   fuzz/run.sh 600                      # every target, 10 minutes each
#   fuzz/run.sh 120 parse_check pcap     # some targets
#
# Environment: JOBS (libFuzzer -jobs/-workers, default 1), MAX_LEN (default per target below).
set -eu

secs=${1:-60}
shift || true
cd "$(dirname "$0")"
all="parse_check ipt_blob wire pcap import_save classify jit_diff run_pcap"
targets=${*:-$all}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    nice -n 19 cargo install --locked cargo-fuzz
fi

# Seeds from the shared corpus when it is there (../shared next to the repository, or NFC_SHARED_DIR): written
# to seeds-shared/<target> (git-ignored) and read next to the committed seeds.
shared=${NFC_SHARED_DIR:-../../shared}
if [ -d "$shared/corpus" ]; then
    python3 shared_seeds.py "$shared/corpus" seeds-shared >&2
fi

# stable toolchains: cargo-fuzz needs nightly flags
export RUSTC_BOOTSTRAP=1
jobs=${JOBS:-1}
mkdir -p logs
printf '%-12s %10s %8s %8s %8s %8s\n' target execs exec/s cov ft crashes
for t in $targets; do
    case $t in
        # the generator's tape: longer inputs reach longer programs; ASan cannot see into JIT code
        # Both read a generator's tape: -len_control=0 lets inputs reach -max_len at once (without it, libFuzzer
        # grows the limit slowly and at ~15 exec/s jit_diff stayed at 13-byte tapes).
        jit_diff) opts="--sanitizer none"; max="${MAX_LEN:-4096} -len_control=0" ;;
        classify) opts="--sanitizer none"; max="${MAX_LEN:-4096} -len_control=0" ;;
        pcap) opts=""; max=${MAX_LEN:-65536} ;;
        # a ruleset and a capture, run on the JIT too (generated code ASan cannot see)
        run_pcap) opts="--sanitizer none"; max=${MAX_LEN:-16384} ;;
        *) opts=""; max=${MAX_LEN:-8192} ;;
    esac
    dict=""
    [ -f "dict/$t.dict" ] && dict="-dict=dict/$t.dict"
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(ls "artifacts/$t" | wc -l)
    # libFuzzer's -jobs runs each job in a child that logs to fuzz-N.log: only ask for it for more than one.
    par=""
    [ "$jobs" -gt 1 ] && par="-jobs=$jobs -workers=$jobs"
    # shellcheck disable=SC2086
    extra=""
    [ -d "seeds-shared/$t" ] && extra="seeds-shared/$t"
    nice -n 19 cargo fuzz run $opts "$t" "corpus/$t" "../testdata/fuzz-seeds/$t" $extra -- \
        -max_total_time="$secs" -max_len=$max $par -print_final_stats=1 \
        $dict >"logs/$t.log" 2>&1 || true
    [ "$jobs" -gt 1 ] && cat fuzz-*.log >>"logs/$t.log" 2>/dev/null && rm -f fuzz-*.log
    after=$(ls "artifacts/$t" | wc -l)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | awk '{s+=$2} END {print s+0}')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "logs/$t.log" | tail -n1 | awk '{print $2+0}')
    last=$(grep -E '#[0-9]+.*cov: [0-9]+' "logs/$t.log" | tail -n1)
    cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    printf '%-12s %10s %8s %8s %8s %8s\n' "$t" "${execs:-0}" "${rate:-0}" "${cov:--}" "${ft:--}" \
        "$((after - before))"
done
echo "logs in fuzz/logs/; crashes in fuzz/artifacts/<target>/ (minimise with cargo fuzz tmin, see README)"
