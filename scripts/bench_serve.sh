#!/usr/bin/env bash
# Serving benchmark for docs/benchmarks.md: starts `moeforge serve`, runs serve_loadgen
# (closed loop, greedy, keep-alive) at 1, 4 and 16 concurrent clients in alternating rounds
# (the machine may be shared: every round measures all levels side by side), and prints the
# medians as a markdown table. --soak S then runs S seconds at --soak-clients clients with
# mixed requests (completions, chat, streamed both) and samples the server's RSS.
#
#   scripts/bench_serve.sh [--build build] [--model models/default] [--threads 1] [--parallel 16] [--ctx 512]
#                          [--max-tokens 64] [--duration 10] [--rounds 3] [--soak 0] [--soak-clients 8]
set -euo pipefail
BUILD=build MODEL=models/default THREADS=1 PARALLEL=16 CTX=512 MAX_TOKENS=64 DURATION=10 ROUNDS=3 SOAK=0 SOAK_CLIENTS=8
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2 ;; --model) MODEL=$2 ;; --threads) THREADS=$2 ;; --parallel) PARALLEL=$2 ;; --ctx) CTX=$2 ;;
    --max-tokens) MAX_TOKENS=$2 ;; --duration) DURATION=$2 ;; --rounds) ROUNDS=$2 ;; --soak) SOAK=$2 ;;
    --soak-clients) SOAK_CLIENTS=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
OUT=$(mktemp -d)
"$BUILD/bin/moeforge" serve -m "$MODEL" --port 0 -t "$THREADS" -P "$PARALLEL" --ctx "$CTX" -q 2>"$OUT/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 600); do  # large models take a while to load
  PORT=$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$OUT/server.log" | sed 's/.*://' || true)
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "${PORT:-}" ] || { cat "$OUT/server.log"; exit 1; }
echo "server: $(head -1 "$OUT/server.log")" >&2
"$BUILD/bin/serve_loadgen" --port "$PORT" -c 4 --duration 2 --max-tokens "$MAX_TOKENS" >/dev/null  # warm-up
for r in $(seq "$ROUNDS"); do
  for c in 1 4 16; do
    "$BUILD/bin/serve_loadgen" --port "$PORT" -c "$c" --duration "$DURATION" --max-tokens "$MAX_TOKENS" --json >>"$OUT/runs.jsonl"
    echo "round $r, $c clients: $(tail -1 "$OUT/runs.jsonl")" >&2
  done
done
[ "$ROUNDS" -gt 0 ] && python3 - "$OUT/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
base = None
print("| clients | requests/s | completion tok/s | vs 1 client | p50 latency | p99 latency | 5xx / failed |")
print("|---|---|---|---|---|---|---|")
for c in (1, 4, 16):
    rs = [r for r in runs if r["concurrency"] == c]
    med = lambda k: statistics.median(r[k] for r in rs)
    tps = med("completion_tokens_per_s")
    base = base or tps
    bad = sum(r["status"].get("5xx", 0) + r["status"].get("failed", 0) for r in rs)
    print(f"| {c} | {med('requests_per_s'):.1f} | {tps:.0f} | {tps / base:.2f}x | {med('latency_p50_s') * 1000:.1f} ms "
          f"| {med('latency_p99_s') * 1000:.1f} ms | {bad} |")
print(f"\n(medians of {len(runs) // 3} rounds; per round: " +
      ", ".join(f"{r['concurrency']}c {r['completion_tokens_per_s']:.0f} tok/s" for r in runs) + ")")
PY
if [ "$SOAK" -gt 0 ]; then
  echo "soak: $SOAK s at $SOAK_CLIENTS clients (mixed requests)" >&2
  "$BUILD/bin/serve_loadgen" --port "$PORT" -c "$SOAK_CLIENTS" --duration "$SOAK" --max-tokens "$MAX_TOKENS" --mix \
    --rss-every 30 --json >"$OUT/soak.json"
  python3 - "$OUT/soak.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
rss = [b / 2**20 for _, b in j["rss"]]
print(f"\nsoak: {j['requests']} requests in {j['wall_s']:.0f} s, {j['requests_per_s']:.1f} req/s, "
      f"{j['completion_tokens_per_s']:.0f} completion tok/s, p50 {j['latency_p50_s']*1000:.1f} ms, "
      f"p99 {j['latency_p99_s']*1000:.1f} ms, status {j['status']}")
print("RSS MiB every 30 s: " + " ".join(f"{x:.1f}" for x in rss))
half = rss[len(rss) // 2:]
print(f"RSS first sample {rss[0]:.1f} MiB, second half min {min(half):.1f} / max {max(half):.1f} MiB")
PY
fi
kill -TERM $SERVER
wait $SERVER && echo "server exited 0 after SIGTERM" >&2
