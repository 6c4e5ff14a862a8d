#!/usr/bin/env bash
# Dense against token-routed MoE variants at equal tokens and equal active FFN compute, on the
# default model's shape (or MODEL's) and 4-domain corpus: dense; top-2 of 8 experts of half its width
# with the load-balancing and z-losses; dynamic top-p (p 0.4, at most 4) of the same experts;
# and sparse upcycling (dense for half the steps, then its FFN copied into 8 experts, top-1 so
# that the active FFN stays the dense one, for the other half; both halves are one learning-rate
# schedule of STEPS, so the MoE half continues where the dense half stopped). Writes OUT/<variant>/.
# Usage: scripts/moe_train_compare.sh [STEPS] [OUT]   (needs data/corpus; runs one after another)
# MODEL='{"n_embd": 320, ...}' overrides fields of the default model's shape (the larger size);
# the experts' width then follows as half the dense n_ff, keeping top-2 at the dense FFN's compute.
set -euo pipefail
BIN=${BIN:-build/bin/moeforge}
STEPS=${1:-300}; OUT=${2:-build-ref/moe-compare}; MODEL=${MODEL:-'{}'}
mkdir -p "$OUT"
N_FF=$(python3 -c "import json, sys; c = json.load(open('configs/default.json'))['model']; c.update(json.loads(sys.argv[1])); print(c['n_ff'])" "$MODEL")
export N_FF HALF_FF=$((N_FF / 2))
cfg() {  # name steps moe_json [upcycle_dir] [schedule_start]: every run is part of one STEPS-long schedule
  python3 - "$2" "$3" "${4:-}" "$STEPS" "${5:-0}" "$MODEL" > "$OUT/$1.json" <<'PY'
import json, os, sys
c = json.load(open("configs/default.json"))
c["tokenizer"] = "models/default/tokenizer.json"
c["model"].update(json.loads(sys.argv[6]))
total = int(sys.argv[4])
c["steps"] = int(sys.argv[1]); c["eval_every"] = max(25, total // 6); c["eval_batches"] = 4
c["checkpoint_every"] = 50; c["log_every"] = 10; c["optim"]["warmup_steps"] = max(10, total // 10)
c["optim"]["schedule_steps"] = total; c["optim"]["schedule_start"] = int(sys.argv[5])
moe = json.loads(sys.argv[2].replace("$HALF_FF", os.environ["HALF_FF"]).replace("$N_FF", os.environ["N_FF"]))
if sys.argv[3]: moe["upcycle_from"] = sys.argv[3]
if moe: c["model"]["moe"] = moe
print(json.dumps(c, indent=1))
PY
}
HALF=$((STEPS / 2))
cfg dense "$STEPS" '{}'
cfg top2 "$STEPS" '{"n_expert": 8, "top_k": 2, "n_ff_expert": $HALF_FF}'
cfg topp "$STEPS" '{"n_expert": 8, "top_p": 0.4, "max_experts": 4, "n_ff_expert": $HALF_FF}'
cfg dense-half "$HALF" '{}'
cfg upcycled "$HALF" '{"n_expert": 8, "top_k": 1, "n_ff_expert": $N_FF}' "$OUT/dense-half" "$HALF"
# MO-CTE, each part alone and both: 2 clusters of 4 experts (top-2 inside), re-clustered every
# 50 steps when the silhouette reaches 0.2; trainability every 25 steps, freezing an expert
# below 0.3 of its peak value for 3 checks.
cfg mocte-clusters "$STEPS" '{"n_expert": 8, "top_k": 2, "n_ff_expert": $HALF_FF, "clusters": 2, "cluster_every": 50}'
cfg mocte-freeze "$STEPS" '{"n_expert": 8, "top_k": 2, "n_ff_expert": $HALF_FF, "trainability_every": 25, "freeze_threshold": 0.3, "freeze_window": 3}'
cfg mocte "$STEPS" '{"n_expert": 8, "top_k": 2, "n_ff_expert": $HALF_FF, "clusters": 2, "cluster_every": 50, "trainability_every": 25, "freeze_threshold": 0.3, "freeze_window": 3}'
# LoRA-like experts (MO-CTE's option): 8 experts sharing one FFN of width 256, each with its own
# rank-16 update, top-2 (the active compute of top2, a seventh of its expert parameters); alone
# and with both MO-CTE parts.
cfg lora-experts "$STEPS" '{"n_expert": 8, "top_k": 2, "n_ff_expert": $HALF_FF, "lora_rank": 16}'
cfg mocte-lora "$STEPS" '{"n_expert": 8, "top_k": 2, "n_ff_expert": $HALF_FF, "lora_rank": 16, "clusters": 2, "cluster_every": 50, "trainability_every": 25, "freeze_threshold": 0.3, "freeze_window": 3}'
VARIANTS=${VARIANTS:-"dense top2 topp dense-half upcycled mocte-clusters mocte-freeze mocte lora-experts mocte-lora"}
for v in $VARIANTS; do
  start=$(date +%s.%N)
  "$BIN" train -c "$OUT/$v.json" -o "$OUT/$v" 2>"$OUT/$v.log"
  echo "$v $(python3 -c "import time; print(round(time.time() - $start, 1))")" >> "$OUT/seconds.txt"
done
echo done > "$OUT/DONE"
