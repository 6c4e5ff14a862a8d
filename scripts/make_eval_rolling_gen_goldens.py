#!/usr/bin/env python3
"""Golden WikiText rolling log-likelihoods and GSM8K greedy generations for `moeforge eval`,
computed with Hugging Face transformers (float32) the way lm-evaluation-harness runs
loglikelihood_rolling and generate_until. Together with scripts/make_eval_goldens.py (multiple
choice and the GSM8K prompts) this gives a golden sample of every built-in task.

Run from the repository root on the host (it runs itself inside the reference chroot with
--inner, as make_eval_goldens.py does, whose helpers it imports):
    python3 scripts/make_eval_rolling_gen_goldens.py [--gguf PATH] [--data ../shared/data/eval]
Writes tests/golden/data/eval/lm_eval_rolling_gen_default.json and
lm_eval_rolling_gen_smollm2-135m-instruct-q4_1.json.

lm-eval rules reproduced here (lm_eval/models/huggingface.py, lm_eval/utils.py, v0.4.x):
 * loglikelihood_rolling: tokens = tok_encode(doc) (no special tokens: the 0.4.x default for
   causal models); windows = make_disjoint_window(get_rolling_token_windows(tokens,
   prefix_token_id, max_seq_len = max_length, context_len = 1)); prefix_token_id = BOS if the
   tokenizer has one, else EOS; each window scored as a loglikelihood request; the document's
   log-likelihood is the sum over its windows. max_length is set small here (--model_args
   max_length=WINDOW) so that one article spans many windows.
 * word count len(re.split(r"\\s+", doc)), byte count len(doc.encode("utf-8"))
   (lm_eval/tasks/wikitext: word_perplexity, byte_perplexity, bits_per_byte).
 * generate_until: context = tok_encode(context) with the tokenizer's default special tokens,
   left-truncated to max_length - max_gen_toks; greedy decoding; stops at EOS or when the
   decoded text contains a stop string; the text is cut before the first stop string.
"""
import datetime, hashlib, json, os, re, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_eval_goldens as base  # noqa: E402  (load_f32_model, score, paths)

WINDOW = 64        # rolling window (max_length) for WikiText
N_ARTICLES = 2     # the first articles of wikitext2/test.txt
GEN_TOKENS = 40    # max_gen_toks for the GSM8K samples
N_GSM8K = 2        # the first prompts of gsm8k_prompts.json


def wikitext_articles(text, n):
    """Split raw WikiText at its top-level ' = Title = ' lines, as lm-eval's document-level
    dataset holds one page per document; whitespace-only pieces are dropped."""
    articles = []
    for line in text.splitlines(keepends=True):
        heading = line.startswith(" = ") and not line.startswith(" = = ") and " = \n" in line
        if heading or not articles:
            articles.append("")
        articles[-1] += line
    articles = [a for a in articles if a.strip(" \n")]
    return articles[:n]


def rolling_windows(tokens, prefix, max_len):
    """lm_eval/utils.py get_rolling_token_windows(context_len=1) followed by make_disjoint_window."""
    pred_len = max_len  # max_seq_len - context_len + 1
    first = min(max_len, len(tokens))
    windows = [([prefix] + tokens[:first - 1], tokens[:first])]
    done = first
    while done < len(tokens):
        n = min(len(tokens) - done, pred_len)
        end = done + n
        windows.append((tokens[end - max_len - 1:end - 1], tokens[end - n:end]))
        done += n
    return [(a[:len(a) - (len(b) - 1)], b) for a, b in windows]


def greedy_generate(model, torch, tok, ids, until, max_tokens):
    """Greedy decoding with a KV cache; returns the generated ids, the cut text, why it stopped and
    the smallest gap between the best and second-best logit over the steps (a near tie could
    flip between two correct engines)."""
    out, margin, past, inp = [], float("inf"), None, torch.tensor([ids])
    with torch.no_grad():
        for _ in range(max_tokens):
            r = model(inp, past_key_values=past, use_cache=True)
            past = r.past_key_values
            logits = r.logits[0, -1].float()
            top = torch.topk(logits, 2)
            margin = min(margin, float(top.values[0] - top.values[1]))
            nxt = int(top.indices[0])
            if nxt == tok.eos_token_id:
                return out, tok.decode(out, skip_special_tokens=True), "eos", margin
            out.append(nxt)
            text = tok.decode(out, skip_special_tokens=True)
            cut = [text.find(u) for u in until if text.find(u) >= 0]
            if cut:
                return out, text[:min(cut)], "stop", margin
            inp = torch.tensor([[nxt]])
    return out, tok.decode(out, skip_special_tokens=True), "length", margin


def run_model(args):
    torch, transformers, tok, model, max_length, from_gguf = base.load_f32_model(args)
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    with open(os.path.join(args.data, "wikitext2/test.txt"), encoding="utf-8") as f:
        articles = wikitext_articles(f.read(), N_ARTICLES)
    wikitext = []
    for i, doc in enumerate(articles):
        ids = tok.encode(doc, add_special_tokens=False)
        lls = [base.score(model, torch, c, k, WINDOW)[0] for c, k in rolling_windows(ids, prefix, WINDOW)]
        wikitext.append({"article": i, "sha256": hashlib.sha256(doc.encode("utf-8")).hexdigest(),
                         "bytes": len(doc.encode("utf-8")), "words": len(re.split(r"\s+", doc)),
                         "tokens": len(ids), "window_loglikelihoods": lls, "loglikelihood": sum(lls)})
        print(f"wikitext article {i}: {len(ids)} tokens, {len(lls)} windows, ll {sum(lls):.4f}", file=sys.stderr)

    with open(base.OUT_DIR + "/gsm8k_prompts.json", encoding="utf-8") as f:
        prompts = json.load(f)["prompts"][:N_GSM8K]
    until = list(base.GSM8K_UNTIL)
    eos_text = tok.decode([tok.eos_token_id]) if tok.eos_token_id is not None else ""
    if eos_text and eos_text not in until:
        until.append(eos_text)  # lm_eval/models/utils.py handle_stop_sequences
    gsm8k = []
    for p in prompts:
        ids = tok.encode(p["context"])  # the tokenizer's default special tokens
        kept = ids[-(max_length - GEN_TOKENS):]
        gen, text, why, margin = greedy_generate(model, torch, tok, kept, until, GEN_TOKENS)
        gsm8k.append({"doc_index": p["doc_index"], "prompt_tokens": len(ids), "prompt_tokens_kept": len(kept),
                      "generated_ids": gen, "text": text, "stop_reason": why, "min_top2_logit_gap": margin})
        print(f"gsm8k doc {p['doc_index']}: {len(ids)} prompt tokens ({len(kept)} kept), {len(gen)} generated, "
              f"{why}, smallest top-2 gap {margin:.4f}: {text!r}", file=sys.stderr)

    header = {
        "generator": "scripts/make_eval_rolling_gen_goldens.py",
        "transformers": transformers.__version__, "torch": torch.__version__,
        "model": args.model_label or args.model, "model_sha256": args.model_sha256,
        "model_loading": "AutoModelForCausalLM.from_pretrained(..., dtype=float32).float().eval()"
                         + ("; GGUF dequantised to float32 by transformers" if from_gguf else ""),
        "max_length": max_length, "prefix_token_id": prefix,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wikitext": f"../shared/data/eval/wikitext2/test.txt, its first {N_ARTICLES} articles; rolling windows of "
                    f"{WINDOW} tokens (lm-eval max_length={WINDOW}); log_softmax float32, sums float64",
        "wikitext_window": WINDOW,
        "gsm8k": f"the first {N_GSM8K} prompts of gsm8k_prompts.json, greedy, max_gen_toks {GEN_TOKENS}, until {until}",
        "gsm8k_max_gen_toks": GEN_TOKENS,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"header": header, "wikitext": wikitext, "gsm8k": gsm8k}, f, ensure_ascii=False, indent=1)
        f.write("\n")


def host(args):
    work = tempfile.mkdtemp(dir=base.ROOT, prefix=".goldens-rolling-")
    try:
        data = os.path.join(work, "data", "wikitext2")
        os.makedirs(data)
        shutil.copy(os.path.join(args.data, "wikitext2/test.txt"), data)
        gguf = os.path.join(work, os.path.basename(args.gguf))
        shutil.copy(args.gguf, gguf)
        sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
        rel = lambda p: os.path.relpath(p, base.ROOT)
        me = rel(os.path.abspath(__file__))
        jobs = [
            ["--model", "models/default", "--model-label", "models/default", "--model-sha256",
             sha(os.path.join(base.ROOT, "models/default/model.safetensors")),
             "--out", f"{base.OUT_DIR}/lm_eval_rolling_gen_default.json"],
            ["--model", rel(gguf), "--model-label", args.gguf, "--model-sha256", sha(args.gguf),
             "--out", f"{base.OUT_DIR}/lm_eval_rolling_gen_smollm2-135m-instruct-q4_1.json"],
        ]
        for j in jobs:
            subprocess.run([base.REF, "python3", me, "--inner", "--data", rel(os.path.join(work, "data")),
                            "--threads", str(args.threads)] + j, cwd=base.ROOT, check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    args = base.arguments(__doc__.split("\n\n")[0]).parse_args()
    host(args) if not args.inner else run_model(args)


if __name__ == "__main__":
    main()
