#!/usr/bin/env bash
# Trainer throughput on this machine: one process with 2 threads against two data-parallel
# ranks (c10d Gloo over loopback) of 1 thread each, same global batch, the default model's
# shape and corpus; alternated ROUNDS times, tokens/s as the median of the log windows after
# the first. Usage: scripts/bench_data_parallel.sh [ROUNDS] [STEPS]   (needs data/corpus)
set -euo pipefail
BIN=${BIN:-build/bin/moeforge}
ROUNDS=${1:-2}; STEPS=${2:-40}
W=build-ref/dp-bench; rm -rf "$W"; mkdir -p "$W"
make_cfg() {  # batch threads out
  python3 - "$1" "$2" "$STEPS" > "$3" <<'PY'
import json, sys
c = json.load(open("configs/default.json"))
c["tokenizer"] = "models/default/tokenizer.json"
c["batch_size"], c["threads"], c["steps"] = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c["log_every"] = 10; c["eval_every"] = 100000; c["eval_batches"] = 1; c["checkpoint_every"] = 100000
c["optim"]["warmup_steps"] = 10
print(json.dumps(c))
PY
}
make_cfg 16 2 "$W/one.json"; make_cfg 8 1 "$W/two.json"
for r in $(seq "$ROUNDS"); do
  "$BIN" train -c "$W/one.json" -o "$W/one-$r" --fresh 2>/dev/null
  "$BIN" train -c "$W/two.json" -o "$W/two-$r" --fresh --nproc 2 --threads 1 2>/dev/null
done
python3 - "$W" "$ROUNDS" <<'PY'
import csv, statistics, sys
w, rounds = sys.argv[1], int(sys.argv[2])
def tps(d):
    rows = [float(r["tokens_per_s"]) for r in csv.DictReader(open(f"{d}/train_log.csv"))]
    return rows[1:]  # the first window includes start-up
one = [x for r in range(1, rounds + 1) for x in tps(f"{w}/one-{r}")]
two = [x for r in range(1, rounds + 1) for x in tps(f"{w}/two-{r}")]
a, b = statistics.median(one), statistics.median(two)
print("| run | tokens/s (median of log windows) |")
print("|---|---|")
print(f"| 1 process, 2 threads, batch 16 | {a:.0f} |")
print(f"| 2 ranks (c10d Gloo, loopback), 1 thread each, batch 8 each | {b:.0f} |")
print(f"| ratio (2 ranks / 1 process) | {b / a:.2f} |")
PY
