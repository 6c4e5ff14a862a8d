#!/usr/bin/env python3
"""Writes tests/fuzz/seeds/gguf_quant_types: a GGUF (behind the fuzz target's parser-selector
byte) with one small tensor of every quantised type moeforge reads, so the fuzzer starts from
valid blocks of each. Random block bytes with finite fp16 scales; run with gguf-py installed:
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf numpy
    /tmp/venv/bin/python scripts/make_fuzz_seed_quants.py
"""
import os, tempfile

import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

SCALE_OFFSETS = {
    T.Q4_0: lambda n: (0,), T.Q5_0: lambda n: (0,), T.Q8_0: lambda n: (0,),
    T.Q4_1: lambda n: (0, 2), T.Q5_1: lambda n: (0, 2), T.Q4_K: lambda n: (0, 2), T.Q5_K: lambda n: (0, 2),
    T.Q2_K: lambda n: (n - 4, n - 2), T.Q3_K: lambda n: (n - 2,), T.Q6_K: lambda n: (n - 2,),
}
rng = np.random.default_rng(0)
path = tempfile.mktemp(suffix=".gguf")
w = GGUFWriter(path, "llama")
for t in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
    block, size = GGML_QUANT_SIZES[t]
    raw = rng.integers(0, 256, size=size, dtype=np.uint8)
    # fp16 scales: small finite values at the byte offsets where each layout keeps them
    scale = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)
    for off in SCALE_OFFSETS[t](size):
        raw[off:off + 2] = scale
    w.add_tensor(f"t_{t.name.lower()}", raw.reshape(1, size), raw_shape=(1, size), raw_dtype=t)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
out = os.path.join(os.path.dirname(__file__), "..", "tests/fuzz/seeds/gguf_quant_types")
with open(out, "wb") as f:
    f.write(b"\x01" + open(path, "rb").read())
os.remove(path)
print(out, os.path.getsize(out))
