#!/usr/bin/env python3
"""Golden (de)quantisation data from gguf-py, an implementation independent of ours.

Writes tests/golden/data/quant_blocks.bin (raw bytes) and quant_index.json (what is where):
  * "dequant": random blocks of every GGML type we read (random code bytes, random finite
    fp16 scales) and gguf-py's dequantised float32 values;
  * "quant": random floats and gguf-py's quantised bytes, for the types gguf-py quantises.
With --gguf FILE... also records sha256 of gguf-py's dequantised float32 bytes of every
tensor of each GGUF file (quant_gguf_sha256.json), for the skip-if-absent real-file test.
Run in the reference environment (numpy + gguf-py):
  ../shared/reference/run.sh python3 scripts/make_quant_goldens.py [--gguf a.gguf b.gguf]
"""
import argparse
import hashlib
import importlib.metadata
import json
import os

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants

OUT = "tests/golden/data"

# type -> (block bytes, elements, byte offsets of fp16 scales)
TYPES = {
    "q8_0": (Q.Q8_0, 34, 32, [0]),
    "q4_0": (Q.Q4_0, 18, 32, [0]),
    "q4_1": (Q.Q4_1, 20, 32, [0, 2]),
    "q5_0": (Q.Q5_0, 22, 32, [0]),
    "q5_1": (Q.Q5_1, 24, 32, [0, 2]),
    "q2_K": (Q.Q2_K, 84, 256, [80, 82]),
    "q3_K": (Q.Q3_K, 110, 256, [108]),
    "q4_K": (Q.Q4_K, 144, 256, [0, 2]),
    "q5_K": (Q.Q5_K, 176, 256, [0, 2]),
    "q6_K": (Q.Q6_K, 210, 256, [208]),
}
N_BLOCKS = 6


def random_blocks(rng, nbytes, offsets, n):
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    for off in offsets:
        # Finite halves of mixed sign and magnitude (some subnormal, one zero).
        h = (rng.standard_normal(n) * 10.0 ** rng.integers(-6, 1, size=n)).astype(np.float16)
        h[0] = np.float16(0.0) if off == offsets[-1] and len(offsets) > 1 else h[0]
        raw[:, off:off + 2] = h.view(np.uint8).reshape(n, 2)
    return raw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", nargs="*", default=[])
    args = ap.parse_args()
    rng = np.random.default_rng(20261204)
    blob = bytearray()
    entries = []

    def put(b):
        off = len(blob)
        blob.extend(b)
        return off

    for name, (qt, nbytes, nel, offs) in TYPES.items():
        raw = random_blocks(rng, nbytes, offs, N_BLOCKS)
        vals = quants.dequantize(raw.reshape(1, -1), qt).astype(np.float32).reshape(-1)
        assert vals.size == N_BLOCKS * nel
        entries.append({"kind": "dequant", "type": name, "n": int(vals.size),
                        "blocks": put(raw.tobytes()), "bytes": int(raw.size), "floats": put(vals.tobytes())})
    for name, (qt, nbytes, nel, _) in TYPES.items():
        x = (rng.standard_normal(N_BLOCKS * nel) * 0.3).astype(np.float32)
        x[5] = 0.0
        x[nel:2 * nel] = 0.0  # an all-zero block
        try:
            q = quants.quantize(x.reshape(1, -1), qt)
        except (NotImplementedError, quants.QuantError):
            continue
        q = np.asarray(q, dtype=np.uint8).reshape(-1)
        entries.append({"kind": "quant", "type": name, "n": int(x.size),
                        "floats": put(x.tobytes()), "blocks": put(q.tobytes()), "bytes": int(q.size)})
    with open(os.path.join(OUT, "quant_blocks.bin"), "wb") as f:
        f.write(blob)
    index = {"generator": "scripts/make_quant_goldens.py",
             "gguf_py_version": importlib.metadata.version("gguf"),
             "numpy_version": np.__version__, "entries": entries}
    with open(os.path.join(OUT, "quant_index.json"), "w") as f:
        json.dump(index, f, indent=1)

    if args.gguf:
        from gguf import GGUFReader
        files = {}
        for path in args.gguf:
            r = GGUFReader(path)
            sums = {}
            for t in r.tensors:
                vals = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
                sums[t.name] = {"type": t.tensor_type.name, "n": int(vals.size),
                                "sha256": hashlib.sha256(np.ascontiguousarray(vals).tobytes()).hexdigest()}
            files[os.path.basename(path)] = sums
        # One tensor per line: "name": [type, elements, sha256 of the float32 bytes].
        lines = ['{"generator": "scripts/make_quant_goldens.py --gguf",',
                 f' "gguf_py_version": "{importlib.metadata.version("gguf")}",', ' "files": {']
        for fi, (fname, sums) in enumerate(files.items()):
            lines.append(f'  "{fname}": {{')
            items = list(sums.items())
            for ti, (name, v) in enumerate(items):
                comma = "," if ti + 1 < len(items) else ""
                lines.append(f'   "{name}": ["{v["type"]}", {v["n"]}, "{v["sha256"]}"]{comma}')
            lines.append("  }" + ("," if fi + 1 < len(files) else ""))
        lines.append(" }}")
        text = "\n".join(lines) + "\n"
        json.loads(text)
        with open(os.path.join(OUT, "quant_gguf_sha256.json"), "w") as f:
            f.write(text)

if __name__ == "__main__":
    main()
