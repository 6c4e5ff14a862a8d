#!/usr/bin/env python3
"""Token ids of the real checkpoints' vocabularies (`moeforge pull`: SmolLM2's GPT-2-style BPE
with the smollm pre-tokenizer, Gemma 3's 262k SentencePiece-style vocabulary), from llama.cpp's
llama-tokenize on the same GGUF files, for make_tokenizer_goldens.py's tricky strings.
Written to tests/golden/data/tokenizer/golden_real_models.json; checked by
tests/golden/test_real_tokenizer_golden.cpp (which skips when the models are not pulled).
    LLAMA_BIN=/path/to/llama.cpp/build/bin python3 scripts/make_real_tokenizer_goldens.py
Fields as in the other goldens: "ids" = no BOS, special tokens not parsed; "ids_special" = the
vocabulary's BOS setting, special tokens parsed.
"""
import ast, json, os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_goldens import TEXTS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MF = os.environ.get("MOEFORGE_BIN", os.path.join(ROOT, "build/bin/moeforge"))
TOKENIZE = os.path.join(os.environ["LLAMA_BIN"], "llama-tokenize")
EXTRA = ["<start_of_turn>user\nHi<end_of_turn>", "<|im_start|>user\nHi<|im_end|>", "<bos>text</s>"]


def llama_ids(path, text, special):
    args = [TOKENIZE, "-m", path, "--ids", "--log-disable", "--stdin"]
    if not special:
        args += ["--no-bos", "--no-parse-special"]
    out = subprocess.run(args, input=text.encode(), capture_output=True, check=True).stdout.decode()
    return ast.literal_eval(out.strip().splitlines()[-1])


def main():
    version = subprocess.run([os.path.join(os.environ["LLAMA_BIN"], "llama-completion"), "--version"],
                             capture_output=True, text=True).stderr.strip().splitlines()[0]
    out = {"generator": "scripts/make_real_tokenizer_goldens.py", "llama.cpp": version, "models": {}}
    for name in ("smollm2-135m-instruct", "gemma3-270m"):
        path = subprocess.run([MF, "pull", name, "-q"], capture_output=True, text=True, check=True).stdout.strip()
        out["models"][name] = [{"text": t, "ids": llama_ids(path, t, False), "ids_special": llama_ids(path, t, True)}
                               for t in TEXTS + EXTRA]
    dst = os.path.join(ROOT, "tests/golden/data/tokenizer/golden_real_models.json")
    with open(dst + ".tmp", "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
    os.replace(dst + ".tmp", dst)
    print(dst, sum(len(v) for v in out["models"].values()), "cases")


if __name__ == "__main__":
    main()
