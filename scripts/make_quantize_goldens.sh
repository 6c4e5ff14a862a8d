#!/usr/bin/env bash
# llama-quantize's q4_K_M, q5_K_M and q6_K of the committed default model (via moeforge's f16
# GGUF of it), recorded as the type and sha256 of every tensor in
# tests/golden/data/llamacpp/quantize_default.json: `moeforge convert --type PRESET` must
# write the same bytes (tests/golden/test_quantize_golden.cpp).
#   LLAMA_BIN=/path/to/llama.cpp/build/bin scripts/make_quantize_goldens.sh
# Needs gguf-py (python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf numpy; PY=/tmp/venv/bin/python).
set -euo pipefail
MF=${MF:-build/bin/moeforge}
PY=${PY:-/tmp/venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$MF" convert models/default "$tmp/f16.gguf" --type f16
for p in Q4_K_M Q5_K_M Q6_K; do "$LLAMA_BIN/llama-quantize" "$tmp/f16.gguf" "$tmp/$p.gguf" "$p" 2 >/dev/null 2>&1; done
version=$("$LLAMA_BIN/llama-completion" --version 2>&1 | head -1 || true)
"$PY" - "$tmp" "$version" <<'PY' > tests/golden/data/llamacpp/quantize_default.json
import hashlib, json, sys
import numpy as np
from gguf import GGUFReader
tmp, version = sys.argv[1], sys.argv[2]
out = {"generator": "scripts/make_quantize_goldens.sh", "llama.cpp": version, "source": "moeforge convert models/default --type f16", "presets": {}}
def moeforge_name(gguf_name):  # Q4_K -> q4_K, Q5_0 -> q5_0, F32 -> f32
    return gguf_name.lower().replace("_k", "_K")
for p in ("Q4_K_M", "Q5_K_M", "Q6_K"):
    r = GGUFReader(f"{tmp}/{p}.gguf")
    out["presets"][{"Q4_K_M": "q4_K_M", "Q5_K_M": "q5_K_M", "Q6_K": "q6_K"}[p]] = {
        t.name: [moeforge_name(t.tensor_type.name), hashlib.sha256(np.asarray(t.data).view(np.uint8).tobytes()).hexdigest()]
        for t in r.tensors}
print(json.dumps(out, indent=1))
PY
echo "wrote tests/golden/data/llamacpp/quantize_default.json"
