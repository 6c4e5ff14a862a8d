#!/usr/bin/env python3
"""Golden ids for a tokenizer trained by `moeforge train-tokenizer`, computed by Hugging Face
tokenizers loading the tokenizer.json moeforge wrote (so the written file is valid and the
engine tokenizes it exactly as the reference does).
    build/bin/moeforge train-tokenizer ../shared/data/eval/prose/frankenstein.txt <python json pkg sources> \
        -o tests/golden/data/tokenizer/moeforge_bpe --vocab-size 1500
    ../shared/reference/run.sh python3 scripts/make_trained_tokenizer_golden.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_tokenizer_goldens as g  # noqa: E402

path = g.OUT / "moeforge_bpe" / "tokenizer.json"
texts = g.TEXTS + ["    def f(x):\n        return x ** 2  # 12345\n", "Question: 48/2 = 24. The answer is 24."]
g.write_golden("moeforge_bpe", "hf", "repo", str(path.relative_to(g.ROOT)), g.hf_cases(path, texts), g.versions(),
               "tokenizer trained by moeforge train-tokenizer; ids from HF tokenizers")
