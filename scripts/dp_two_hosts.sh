#!/usr/bin/env bash
# Data-parallel training across two "hosts": two network namespaces joined by a veth pair
# (10.77.0.1 and 10.77.0.2, nothing else reachable), one rank in each, rank 0's c10d store
# at 10.77.0.1. Compares the losses with one process training the doubled batch.
# Needs root (ip netns). Usage: scripts/dp_two_hosts.sh CONFIG_B.json CONFIG_2B.json OUT_DIR
set -euo pipefail
BIN=${BIN:-$(pwd)/build/bin/moeforge}
CFG_B=$1; CFG_2B=$2; OUT=$3
A=mf-host0; B=mf-host1
cleanup() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add $A; ip netns add $B
ip link add mf-veth0 type veth peer name mf-veth1
ip link set mf-veth0 netns $A; ip link set mf-veth1 netns $B
ip -n $A addr add 10.77.0.1/24 dev mf-veth0; ip -n $B addr add 10.77.0.2/24 dev mf-veth1
for n in $A $B; do ip -n $n link set lo up; done
ip -n $A link set mf-veth0 up; ip -n $B link set mf-veth1 up
rm -rf "$OUT"; mkdir -p "$OUT"
"$BIN" train -c "$CFG_2B" -o "$OUT/one" --fresh --threads 1 2>/dev/null
ip netns exec $A "$BIN" train -c "$CFG_B" -o "$OUT/two" --fresh --threads 1 --rank 0 --world-size 2 --master 10.77.0.1:29611 2>"$OUT/rank0.log" &
ip netns exec $B "$BIN" train -c "$CFG_B" -o "$OUT/two-rank1" --fresh --threads 1 --rank 1 --world-size 2 --master 10.77.0.1:29611 2>"$OUT/rank1.log"
wait
python3 - "$OUT" <<'PY'
import csv, sys
out = sys.argv[1]
a = [float(r["train_loss"]) for r in csv.DictReader(open(f"{out}/one/train_log.csv"))]
b = [float(r["train_loss"]) for r in csv.DictReader(open(f"{out}/two/train_log.csv"))]
d = max(abs(x - y) for x, y in zip(a, b))
print(f"{len(a)} steps; one process (2B) vs two namespaces (B each) over veth: max |loss difference| = {d:.2e}")
print("final losses:", a[-1], b[-1])
sys.exit(0 if len(a) == len(b) and d < 1e-5 else 1)
PY
