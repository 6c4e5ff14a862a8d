#!/usr/bin/env bash
# MoDE on SmolLM2-135M-Instruct against a LoRA of equal trainable parameters and equal tokens, on
# one domain (math) with code, prose and reference held out (docs/mode.md). The GGUF checkpoint
# is converted to an f32 Hugging Face directory first (the trainer reads those only).
#   scripts/mode_smollm2.sh OUT [STEPS] [EVAL_BYTES]
# With MODE_EVAL_TASKS=LIST (moeforge eval --tasks) and MODE_EVAL_LIMIT=N it also scores task
# accuracy of the three rows (eval-ROW.json, tasks.txt); MODE_EVAL_LIMIT is one or more of N and
# TASK=N, as moeforge eval --limit takes them.
set -euo pipefail
out=${1:?usage: scripts/mode_smollm2.sh OUT [STEPS] [EVAL_BYTES]}
steps=${2:-40}
eval_bytes=${3:-20000}
cd "$(dirname "$0")/.."
bin=build/bin/moeforge
mkdir -p "$out"
base="$out/smollm2-hf"
[ -d "$base" ] || $bin convert smollm2-135m-instruct "$base" --format hf

common='"train": {"math": "data/corpus/math/train.txt"},
  "valid": {"math": "data/corpus/math/valid.txt", "code": "data/corpus/code/valid.txt",
            "prose": "data/corpus/prose/valid.txt", "reference": "data/corpus/reference/valid.txt"},
  "optim": {"lr": 5e-4, "min_lr": 5e-5, "warmup_steps": 4, "weight_decay": 0.0},
  "batch_size": 4, "seq_len": 128, "steps": '$steps', "eval_every": '$steps', "eval_batches": 2,
  "checkpoint_every": 20, "log_every": 5, "threads": 2, "seed": 1234'
# 3 blocks of 10 layers, one expert layer per block: 3 layers of 3.54M = 10.6M trainable parameters.
cat > "$out/mode.json" <<JSON
{ "mode": {"backbone": "$base", "experts": ["math"], "blocks": 3, "layers_per_expert": 1}, $common }
JSON
# LoRA on all seven maps of 30 layers: 10176 r per layer, r = 35 gives 10.7M.
cat > "$out/lora.json" <<JSON
{ "lora": {"base": "$base", "rank": 35, "alpha": 70}, $common }
JSON
timed() {  # NAME CMD...: runs CMD unless NAME is done, recording seconds and peak RSS
  local name=$1; shift
  if [ -f "$out/$name.time" ]; then return; fi
  /usr/bin/time -f "%e s, %M KiB peak" -o "$out/$name.time" "$@"
}
timed mode $bin train -c "$out/mode.json" --expert math -o "$out/mode"
timed lora $bin train -c "$out/lora.json" -o "$out/lora"

for d in math code prose reference; do
  head -c "$eval_bytes" "data/corpus/$d/valid.txt" | iconv -c -f utf-8 -t utf-8 > "$out/eval-$d.txt"
done
{
  echo "steps $steps, batch 4 x 128 tokens; NLL per token on the first $eval_bytes bytes of each valid file (moeforge perplexity -c 128)"
  printf '%-22s' row; for d in math code prose reference; do printf '%10s' "$d"; done; echo
  for row in "backbone|-m $base" "MoDE math expert|-m $out/mode" "LoRA r=35|-m $base --lora $out/lora"; do
    printf '%-22s' "${row%%|*}"
    for d in math code prose reference; do
      ppl=$($bin perplexity ${row#*|} -f "$out/eval-$d.txt" -c 128 --json -t 2 2>/dev/null | python3 -c 'import json,sys,math; print("%.4f" % math.log(json.load(sys.stdin)["ppl"]))')
      printf '%10s' "$ppl"
    done
    echo
  done
  echo "train time: MoDE $(cat "$out/mode.time"), LoRA $(cat "$out/lora.time")"
} | tee "$out/results.txt"

[ -n "${MODE_EVAL_TASKS:-}" ] || exit 0
for row in "backbone|-m $base" "mode|-m $out/mode" "lora|-m $base --lora $out/lora"; do
  name=${row%%|*}
  [ -f "$out/eval-$name.json" ] || $bin eval ${row#*|} --tasks "$MODE_EVAL_TASKS" --limit ${MODE_EVAL_LIMIT:-200} \
      --json -q -t 2 > "$out/eval-$name.json.tmp" && mv "$out/eval-$name.json.tmp" "$out/eval-$name.json"
done
python3 - "$out" <<'PY' | tee "$out/tasks.txt"
import json, sys
out = sys.argv[1]
runs = {n: json.load(open(f"{out}/eval-{n}.json"))["tasks"] for n in ("backbone", "mode", "lora")}
tasks = list(runs["backbone"])
print("accuracy (stderr); documents per task:", {t: runs["backbone"][t]["n"] for t in tasks})
print("| row | " + " | ".join(tasks) + " |")
print("|---" * (len(tasks) + 1) + "|")
for n, r in runs.items():
    cells = []
    for t in tasks:
        m = r[t]["metrics"]
        k = "acc" if "acc" in m else "exact_match_flexible" if "exact_match_flexible" in m else next(iter(m))
        cells.append(f"{m[k]['value']:.3f} ({m[k]['stderr']:.3f})")
    print(f"| {n} | " + " | ".join(cells) + " |")
PY
