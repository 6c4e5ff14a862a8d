#!/usr/bin/env python3
"""Compares two GGUF files tensor by tensor: type, shape and bytes (e.g. moeforge's
`convert --type q4_K_M` against llama-quantize's Q4_K_M of the same f16 file). Needs gguf-py:
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf numpy
    /tmp/venv/bin/python scripts/compare_gguf_tensors.py A.gguf B.gguf
Prints one line per difference and a summary; exit status 1 if any tensor differs.
"""
import sys
from collections import Counter

import numpy as np
from gguf import GGUFReader

a, b = (GGUFReader(p) for p in sys.argv[1:3])
ta, tb = ({t.name: t for t in r.tensors} for r in (a, b))
same, diff, types = 0, 0, Counter()
for name in sorted(set(ta) | set(tb)):
    if name not in ta or name not in tb:
        print(f"{name}: only in {'A' if name in ta else 'B'}")
        diff += 1
        continue
    x, y = ta[name], tb[name]
    if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
        print(f"{name}: {x.tensor_type.name}{list(x.shape)} vs {y.tensor_type.name}{list(y.shape)}")
        diff += 1
    elif not np.array_equal(np.asarray(x.data).view(np.uint8), np.asarray(y.data).view(np.uint8)):
        xb, yb = np.asarray(x.data).view(np.uint8).ravel(), np.asarray(y.data).view(np.uint8).ravel()
        print(f"{name}: {x.tensor_type.name} bytes differ ({int((xb != yb).sum())} of {xb.size})")
        diff += 1
    else:
        same += 1
        types[x.tensor_type.name] += 1
print(f"identical: {same} tensors {dict(types)}; different: {diff}")
sys.exit(1 if diff else 0)
