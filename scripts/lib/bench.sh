# Shared by the load-test and soak scripts in scripts/ (sourced, not run):
# where cargo builds, the loopback OTLP receiver, waiting for a line of a
# log, and stopping every process a script starts when it exits.

# The cargo target directory.
bench_target_dir() {
    cargo metadata --format-version 1 --no-deps \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# bench_bin NAME: builds the bench binary of benches/NAME.rs and prints its
# path.
bench_bin() {
    cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null \
        | NAME=$1 python3 -c '
import json, os, sys
exe = None
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and t.get("name") == os.environ["NAME"] \
            and "bench" in t.get("kind", []) and m.get("executable"):
        exe = m["executable"]
print(exe or "")
'
}

# The bench binary of benches/otlp.rs, which serves as the loopback OTLP
# receiver with FAULTLINE_BENCH_OTLP_RECEIVER.
bench_receiver_bin() {
    bench_bin otlp
}

# Every process a script starts (`started+=("$!")`), stopped on exit, by
# pid and nothing else.
started=()
cleanup() {
    for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# wait_line FILE PATTERN: the capture of the first line of FILE that matches
# the sed pattern, waiting at most 30 s.
wait_line() {
    local file=$1 pattern=$2 value=""
    for _ in $(seq 1 300); do
        value=$(sed -n "s/$pattern/\\1/p" "$file" 2>/dev/null | head -n 1)
        [[ -n $value ]] && { echo "$value"; return 0; }
        sleep 0.1
    done
    return 1
}
