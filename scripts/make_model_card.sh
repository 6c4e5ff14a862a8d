#!/usr/bin/env bash
# Writes MODEL_CARD.md (and loss.svg) for a model directory trained by `moeforge train`:
# per-domain validation/test perplexity on data/corpus, greedy samples per domain, the loss
# curve and the training figures. Every number in the card comes from the commands here.
#   scripts/make_model_card.sh models/default
set -euo pipefail
DIR=${1:?model directory}
BIN=${BIN:-build/bin/moeforge}
CTX=${CTX:-256}
python3 scripts/plot_loss.py "$DIR/train_log.csv" "$DIR/loss.svg"
card="$DIR/MODEL_CARD.md.tmp"
{
  echo "# moeforge default model"
  echo
  echo "A small multi-domain Llama-architecture LM trained from scratch by \`moeforge train\` on"
  echo "the project's corpus (\`data/CORPUS.md\`): four domains, \`code\`, \`math\`, \`prose\`, \`reference\`,"
  echo "sampled uniformly per sequence. Rebuild it with \`scripts/make_default_model.sh\`."
  echo
  echo "## Hyperparameters"
  echo '```'
  python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(json.dumps({k: c[k] for k in ("model","optim","batch_size","seq_len","grad_accum","steps","seed")}, indent=1))' configs/default.json
  echo '```'
  python3 - "$DIR" <<'PY'
import csv, json, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/train_log.csv")))
cfg = json.load(open(f"{d}/config.json"))
last = rows[-1]
import os
n = os.path.getsize(f"{d}/model.safetensors") // 4
print(f"\nParameters: about {n/1e6:.2f} M (f32, embeddings tied). Tokenizer: byte-level BPE, vocabulary {cfg['vocab_size']}.")
print(f"Training: {last['step']} steps, {int(last['tokens_seen']):,} tokens seen; last logged training loss {float(last['train_loss']):.3f}.")
tps = [float(r['tokens_per_s']) for r in rows if float(r['tokens_per_s']) > 0]
tps.sort()
print(f"Throughput: median {tps[len(tps)//2]:.0f} tokens/s on 2 threads (CPU, shared machine).")
PY
  echo
  echo "![loss curve](loss.svg)"
  echo
  echo "## Perplexity per domain"
  echo "\`$BIN perplexity -m $DIR -f data/corpus/DOMAIN/SPLIT.txt --ctx $CTX --json\`"
  echo
  echo "| domain | validation ppl | test ppl | test tokens |"
  echo "|---|---|---|---|"
  for d in code math prose reference; do
    v=$($BIN perplexity -m "$DIR" -f "data/corpus/$d/valid.txt" --ctx "$CTX" --json 2>/dev/null)
    t=$($BIN perplexity -m "$DIR" -f "data/corpus/$d/test.txt" --ctx "$CTX" --json 2>/dev/null)
    python3 -c 'import json,sys; v=json.loads(sys.argv[2]); t=json.loads(sys.argv[3]); print("| %s | %.2f | %.2f | %d |" % (sys.argv[1], v["ppl"], t["ppl"], t["tokens"]))' "$d" "$v" "$t"
  done
  echo
  echo "## Greedy samples"
  echo "\`$BIN generate -m $DIR -p PROMPT -n 64 --temp 0\`"
  while IFS='|' read -r domain prompt; do
    p=$(printf '%b' "$prompt")
    out=$($BIN generate -m "$DIR" -p "$p" -n 64 --temp 0)
    echo
    echo "**$domain** — prompt:"
    echo '```'
    printf '%s\n' "$p"
    echo '```'
    echo "continuation:"
    echo '```'
    printf '%s\n' "$out"
    echo '```'
  done <<'PROMPTS'
code|def parse_args(argv):\n    """Parse command line arguments."""\n
math|Question: Tom has 3 boxes with 12 apples in each box. He gives away 10 apples. How many apples does he have left?\nAnswer:
prose|It was a dark and stormy night, and the
reference|The function returns
PROMPTS
  # Run-specific notes written by whoever trained the model.
  [ -f "$DIR/CARD_NOTES.md" ] && { echo; cat "$DIR/CARD_NOTES.md"; }
} > "$card"
mv "$card" "$DIR/MODEL_CARD.md"
echo "wrote $DIR/MODEL_CARD.md"
