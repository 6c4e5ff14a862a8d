#!/usr/bin/env python3
"""Goldens for the real checkpoints (`moeforge pull`), written to tests/golden/data/real_models.json:
  * llama.cpp's greedy continuations (32 tokens) of one prompt per domain (with flash attention,
    its default, and without), and its
    llama-perplexity on the first SLICE_BYTES of WikiText-2 test (ctx 512);
  * transformers' perplexity (float32, the GGUF dequantised by transformers' own loader) on the
    same slice with moeforge's default protocol, scoring moeforge's token ids (transformers'
    GGUF tokenizer conversion splits Gemma 3's text differently from llama.cpp's).
Needs: the models pulled, llama.cpp's tools built from source (LLAMA_BIN, see docs/benchmarks.md),
and the reference environment (../shared/reference/setup.sh; plus python3-accelerate in it).
    LLAMA_BIN=/path/to/llama.cpp/build/bin python3 scripts/make_real_model_goldens.py
"""
import hashlib, json, os, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MF = os.environ.get("MOEFORGE_BIN", os.path.join(ROOT, "build/bin/moeforge"))
LLAMA_BIN = os.environ["LLAMA_BIN"]
REF = os.path.join(ROOT, "../shared/reference/run.sh")
WIKI = os.path.join(ROOT, "../shared/data/eval/wikitext2/test.txt")
SLICE_BYTES, CTX, N_GREEDY = 40000, 512, 32
PROMPTS = {
    "code": "def read_config(path):\n",
    "math": "Question: A shop sells 4 pens for 2 dollars each. How much do the pens cost?\nAnswer:",
    "prose": "And it came to pass, when the",
    "reference": "The module provides",
}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def llama_greedy(path, prompt, fa):
    out = run([f"{LLAMA_BIN}/llama-completion", "-m", path, "-p", prompt, "-n", str(N_GREEDY), "--temp", "0",
               "-t", "2", "-no-cnv", "--no-warmup", "-fa", fa]).stdout
    i = out.index(prompt)  # the prompt is echoed (SentencePiece vocabularies may lead with a space)
    out = out[i + len(prompt):]
    # llama-completion ends its output with "\n\n", after " [end of text]\n" when EOS came first.
    assert out.endswith("\n\n"), repr(out[-20:])
    out = out[:-2]
    return out[:-len(" [end of text]\n")] if out.endswith(" [end of text]\n") else out


def llama_ppl(path, text_file):
    out = run([f"{LLAMA_BIN}/llama-perplexity", "-m", path, "-f", text_file, "-c", str(CTX), "-t", "2"])
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", out.stdout + out.stderr)
    return float(m.group(1))


def main():
    work = tempfile.mkdtemp(dir=ROOT, prefix=".goldens-")
    try:
        text = open(WIKI, encoding="utf-8").read().encode()[:SLICE_BYTES].decode("utf-8", "ignore")
        slice_file = os.path.join(work, "wiki_slice.txt")
        open(slice_file, "w", encoding="utf-8").write(text)
        version = run([f"{LLAMA_BIN}/llama-completion", "--version"]).stderr.strip().splitlines()
        result = {"generator": "scripts/make_real_model_goldens.py", "llama.cpp": version,
                  "wikitext2_slice_bytes": SLICE_BYTES, "ctx": CTX, "models": {}}
        for name in ("smollm2-135m-instruct", "gemma3-270m"):
            path = run([MF, "pull", name, "-q"]).stdout.strip()
            ids = run([MF, "tokenize", "-m", name, "-f", slice_file, "--json"]).stdout
            ids_file = os.path.join(work, "ids.json")
            open(ids_file, "w").write(ids)
            gguf_copy = os.path.join(work, os.path.basename(path))
            shutil.copy(path, gguf_copy)
            tf = json.loads(run([REF, "python3", "scripts/transformers_perplexity.py", os.path.relpath(gguf_copy, ROOT),
                                 os.path.relpath(ids_file, ROOT), str(CTX)], cwd=ROOT).stdout.strip().splitlines()[-1])
            os.remove(gguf_copy)
            result["models"][name] = {
                "file": os.path.basename(path),
                "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
                "llamacpp_ppl": llama_ppl(path, slice_file),
                "transformers_ppl": tf["ppl"], "transformers": tf["transformers"], "transformers_tokens": tf["tokens"],
                # llama.cpp's default (flash attention on) and its other attention path: where the two
                # part, the step is a near-tie that rounding decides.
                "greedy": [{"domain": d, "prompt": p, "n": N_GREEDY, "continuation": llama_greedy(path, p, "on"),
                            "continuation_fa_off": llama_greedy(path, p, "off")} for d, p in PROMPTS.items()],
            }
            print(name, json.dumps(result["models"][name], indent=1)[:800], file=sys.stderr)
        out = os.path.join(ROOT, "tests/golden/data/real_models.json")
        with open(out + ".tmp", "w") as f:
            json.dump(result, f, indent=1, ensure_ascii=False)
        os.replace(out + ".tmp", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
