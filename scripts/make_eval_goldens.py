#!/usr/bin/env python3
"""Golden per-choice log-likelihoods for `moeforge eval`, computed with Hugging Face transformers
(float32) the way EleutherAI's lm-evaluation-harness (lm-eval) scores multiple-choice tasks, plus
the 5-shot GSM8K prompts lm-eval builds. lm-eval itself is not installed: its rules are
re-implemented below, each with the lm-eval source file it comes from (read at
github.com/EleutherAI/lm-evaluation-harness, commit 4e7e0d47f33b, 2026-08-21, checked against tag
v0.4.9 where noted).

Run from the repository root on the host (it copies the few data files and the GGUF into a
temporary folder under the repo, which the reference chroot can see, runs itself there with
--inner, and removes the folder):
    python3 scripts/make_eval_goldens.py [--gguf PATH] [--data ../shared/data/eval]
transformers 5.x loads a GGUF only with accelerate, which the reference setup does not install:
    chroot /opt/ref-sid apt-get install -y python3-accelerate
Writes tests/golden/data/eval/lm_eval_mc_default.json, lm_eval_mc_smollm2-135m-instruct-q4_1.json
and gsm8k_prompts.json.

lm-eval rules a C++ reimplementer must know (also written into each JSON header):
 * Context string (lm_eval/api/task.py ConfigurableTask.fewshot_context / build_qa_turn,
   lm_eval/api/utils.py Message.to_text, maybe_delimit):
     description + for each few-shot doc: doc_to_text(fs) + target_delimiter + answer_text(fs)
     + fewshot_delimiter, then doc_to_text(doc).  Nothing follows the final "Answer:" (the
     eval doc's turn gets delimiter "" since it has no answer). The description is emitted
     verbatim (system message with empty delimiter; it already ends in "\\n\\n").
     Defaults (lm_eval/config/task.py TaskConfig): target_delimiter " ", fewshot_delimiter "\\n\\n",
     description "". The few-shot examples use the same doc_to_text/doc_to_choice/doc_to_target
     (FewshotConfig.from_dict inherits them).
 * Templates are Jinja2 (lm_eval/utils.py apply_template: Environment(BaseLoader,
   StrictUndefined, keep_trailing_newline=True)); doc_to_choice templates are rendered then
   ast.literal_eval'd (task.py doc_to_choice), which is the identity on lists of strings.
 * ARC-Easy (lm_eval/tasks/arc/arc_easy.yaml): doc_to_text "Question: {{question}}\\nAnswer:",
   doc_to_choice "{{choices.text}}", gold = choices.label.index(answerKey); split test; 0-shot
   by default; metrics acc, acc_norm. Our arc_easy.jsonl 'query' already is "Question: "+question.
 * PIQA (lm_eval/tasks/piqa/piqa.yaml): doc_to_text "Question: {{goal}}\\nAnswer:", choices
   [sol1, sol2], gold = label; split validation; metrics acc, acc_norm.
 * MMLU (lm_eval/tasks/mmlu/default/_default_template_yaml + mmlu_<subject>.yaml):
   doc_to_text "{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nD. {{choices[3]}}\\nAnswer:"
   -- only the question is .strip()ped (Python str.strip: all Unicode whitespace both ends),
   the four choices are inserted verbatim; doc_to_choice ["A","B","C","D"] (so continuations
   are " A".." D"); gold = answer (0..3); test split; few-shot split dev with
   fewshot_config.sampler first_n (lm_eval/api/samplers.py FirstNSampler: the first n dev rows
   in file order; the eval doc is only removed when fewshot split == test split, never here);
   the few-shot answer text is the letter. Description per subject (mmlu_<subject>.yaml, made
   by lm_eval/tasks/mmlu/_generate_configs.py):
   "The following are multiple choice questions (with answers) about "
   + ' '.join(subject.split('_')) + ".\\n\\n"  (checked for all 57 subject yamls). Group mmlu
   (_mmlu.yaml) aggregates acc weighted by size; metric acc only.
 * Token split (lm_eval/api/model.py TemplateLM._encode_pair): n = len(ctx) - len(ctx.rstrip());
   if n: cont = ctx[-n:] + cont; ctx = ctx[:-n].  whole = enc(ctx + cont);
   context_enc = enc(ctx); continuation_enc = whole[len(context_enc):].  The model input is
   context_enc + continuation_enc (NOT `whole`) -- they differ only if BPE merges across the
   boundary (field whole_prefix_matches_context says; true for every sample here).
   Empty contexts (not used by these tasks) get [prefix_token_id] = BOS (else EOS) instead.
 * BOS (lm_eval/models/huggingface.py HFLM.tok_encode; lm_eval/models/utils.py
   _add_special_kwargs): lm-eval <= 0.4.9.1 encodes with add_special_tokens=False for causal
   models unless --model_args add_bos_token=True (Gemma forced True): no BOS.  Since commit
   5302f2a90 (#3347, 2025-11-10; tags v0.4.9.2, v0.4.10+) add_bos_token defaults to None and
   tok_encode passes no add_special_tokens, i.e. the tokenizer's own default: BOS is added iff
   the tokenizer's post-processor adds it.  SmolLM2's tokenizer adds none (both the HF repo's
   and the one transformers converts from the GGUF, tokenizer.ggml.add_bos_token=false), so
   every version gives the same ids.  models/default's tokenizer.json has a TemplateProcessing
   post-processor that prepends <|endoftext|> (id 0), so lm-eval >= 0.4.9.2 prepends BOS to
   both enc(ctx) and enc(ctx+cont) (continuation ids unchanged); those values are in
   bos_variant. The primary fields use add_special_tokens=False (lm-eval 0.4.x behaviour, or
   HEAD with add_bos_token=False).
 * Scoring (lm_eval/models/huggingface.py HFLM._loglikelihood_tokens): inp =
   (context_enc + continuation_enc)[-(max_length+1):][:-1] (left truncation); log_softmax over
   the vocab (float32 for a float32 model); ll = sum of the log-probs of the continuation
   tokens at the last len(continuation_enc) positions; is_greedy = every continuation token is
   the argmax at its position.  max_length = first of config n_positions /
   max_position_embeddings / n_ctx, else tokenizer.model_max_length unless "infinite", else
   2048 (lm_eval/models/utils.py resolve_max_length).  models/default has
   max_position_embeddings 512, so its 5-shot MMLU inputs longer than 513 tokens are
   left-truncated (fields input_truncated / model_input_len).  Here log_softmax is float32
   and the sum float64 (lm-eval sums in float32: differences ~1e-6).
 * Metrics (lm_eval/api/task.py ConfigurableTask.process_results, multiple_choice):
   pred = argmax(lls); acc_norm: argmax(lls / len(choice)) where len is Python len of the
   choice string WITHOUT the target delimiter, i.e. Unicode code points, NOT bytes;
   acc_bytes (another metric, unused by these tasks) divides by len(choice.encode('utf-8')).
   np.argmax: ties go to the lowest index.  exact_match = is_greedy[gold].
"""
import argparse, ast, csv, datetime, hashlib, json, os, random, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "..", "shared", "reference", "run.sh")
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "eval")
DEFAULT_GGUF = "/root/.cache/moeforge/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT_DIR = "tests/golden/data/eval"
LM_EVAL_REF = "github.com/EleutherAI/lm-evaluation-harness @ 4e7e0d47f33bc71070c1d38394bafbb52b117163 (2026-08-21); formats identical in v0.4.9"
MMLU_SUBJECTS = ("abstract_algebra", "high_school_biology", "world_religions")
N_MC = 10            # ARC-Easy and PIQA docs 0..9, 0-shot
# plus docs whose choices are not ASCII, where acc_norm's code-point length and acc_bytes' UTF-8
# length differ (e.g. "15°C", "El Niño", "it’s", "5–10")
EXTRA_MC = {"arc_easy": [22, 447], "piqa": [20, 99]}
N_MMLU_0 = 3         # MMLU test docs 0..2 per subject, 0-shot
N_MMLU_5 = 2         # MMLU test docs 0..1 per subject, 5-shot
GSM8K_SEED = 1234    # lm_eval/defaults.py DEFAULT_OTHER_SEED (--seed 0,1234,1234,1234: the 4th is fewshot)

TARGET_DELIMITER = " "    # lm_eval/config/task.py TaskConfig.target_delimiter
FEWSHOT_DELIMITER = "\n\n"  # lm_eval/config/task.py TaskConfig.fewshot_delimiter

# Templates verbatim from the task yamls (YAML "\n" in double quotes is a newline).
ARC_TEXT = "Question: {{question}}\nAnswer:"             # lm_eval/tasks/arc/arc_easy.yaml
ARC_CHOICE = "{{choices.text}}"
PIQA_TEXT = "Question: {{goal}}\nAnswer:"                # lm_eval/tasks/piqa/piqa.yaml
PIQA_CHOICE = "{{[sol1, sol2]}}"
MMLU_TEXT = ("{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:")
MMLU_CHOICES = ["A", "B", "C", "D"]                      # lm_eval/tasks/mmlu/default/_default_template_yaml
# lm-eval's cloze MMLU (lm_eval/tasks/mmlu/continuation/_continuation_template_yaml, commit
# 478562342bc9): the answer's own text is the continuation; doc_to_target "{{answer}}" indexes
# doc_to_choice, so a few-shot answer is that choice's text.
MMLU_CONT_TEXT = "Question: {{question.strip()}}\nAnswer:"
MMLU_CONT_CHOICE = "{{choices}}"
GSM8K_TEXT = "Question: {{question}}\nAnswer:"           # lm_eval/tasks/gsm8k/gsm8k.yaml
GSM8K_TARGET = "{{answer}}"
GSM8K_UNTIL = ["Question:", "</s>", "<|im_end|>"]
GSM8K_STRICT = r"#### (\-?[0-9\.\,]+)"
GSM8K_FLEXIBLE = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
GSM8K_IGNORE = [",", "\\$", "(?s).*#### ", "\\.$"]

RULES = {
    "lm_eval_source": LM_EVAL_REF,
    "context": "description + sum(doc_to_text(fs) + target_delimiter + answer_text(fs) + fewshot_delimiter for fs in fewshot) + doc_to_text(doc); nothing after the final 'Answer:' [lm_eval/api/task.py ConfigurableTask.fewshot_context, build_qa_turn; lm_eval/api/utils.py Message]",
    "target_delimiter": TARGET_DELIMITER, "fewshot_delimiter": FEWSHOT_DELIMITER,
    "continuation": "target_delimiter + choice (the 'choices' field of each sample already includes it) [task.py construct_requests]",
    "arc_easy": "doc_to_text 'Question: {{question}}\\nAnswer:', choices = choices.text, gold = choices.label.index(answerKey), split test, 0-shot, acc + acc_norm [lm_eval/tasks/arc/arc_easy.yaml]. Our data's 'query' already is 'Question: ' + question, so context = query + '\\nAnswer:'.",
    "piqa": "doc_to_text 'Question: {{goal}}\\nAnswer:', choices [sol1, sol2], gold = label, split validation, acc + acc_norm [lm_eval/tasks/piqa/piqa.yaml]. Our data's 'query' already is 'Question: ' + goal.",
    "mmlu_continuation": "task name mmlu_continuation_<subject> here (lm-eval: mmlu_<subject>_continuation); description 'The following are questions (with answers) about ' + ' '.join(subject.split('_')) + '.\\n\\n' [lm_eval/tasks/mmlu/continuation/mmlu_<subject>.yaml]; doc_to_text 'Question: {{question.strip()}}\\nAnswer:'; doc_to_choice '{{choices}}' (rendered, then ast.literal_eval: the four answers' own text); doc_to_target '{{answer}}' (so a few-shot answer is choices[answer]); few-shot from dev, first_n; acc + acc_norm [lm_eval/tasks/mmlu/continuation/_continuation_template_yaml @ 478562342bc9]",
    "mmlu": "description 'The following are multiple choice questions (with answers) about ' + ' '.join(subject.split('_')) + '.\\n\\n' [mmlu_<subject>.yaml, _generate_configs.py; all 57 checked]; doc_to_text '{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nD. {{choices[3]}}\\nAnswer:' (question stripped with Python str.strip, choices NOT stripped); choices ['A','B','C','D']; gold = answer index; few-shot from dev with sampler first_n = first n dev rows in file order, answer text = the letter; metric acc only [lm_eval/tasks/mmlu/default/_default_template_yaml, lm_eval/api/samplers.py FirstNSampler]",
    "token_split": "n = len(ctx)-len(ctx.rstrip()); if n: cont = ctx[-n:]+cont, ctx = ctx[:-n]; whole = enc(ctx+cont); context_ids = enc(ctx); continuation_ids = whole[len(context_ids):]; model input = context_ids + continuation_ids [lm_eval/api/model.py TemplateLM._encode_pair]",
    "bos": "lm-eval <= 0.4.9.1: add_special_tokens=False for causal HF models (no BOS) unless add_bos_token=True. Since 5302f2a90 (#3347; v0.4.9.2, v0.4.10+): tokenizer default (add_special_tokens unset), i.e. BOS iff the tokenizer's post-processor adds one [lm_eval/models/huggingface.py HFLM.tok_encode, lm_eval/models/utils.py _add_special_kwargs]. Primary values here: add_special_tokens=False. If this model's tokenizer adds BOS by default, each sample also has bos_variant (BOS prepended to context_ids; continuation_ids unchanged).",
    "scoring": "inp = (context_ids+continuation_ids)[-(max_length+1):][:-1]; ll = sum over continuation tokens of log_softmax(logits)[token] at the last len(continuation_ids) positions; is_greedy = all(argmax == token) [lm_eval/models/huggingface.py HFLM._loglikelihood_tokens]; max_length = config n_positions|max_position_embeddings|n_ctx, else tokenizer.model_max_length, else 2048 [lm_eval/models/utils.py resolve_max_length]. Here: float32 logits and log_softmax, float64 sum.",
    "metrics": "pred_acc = argmax(lls); pred_acc_norm = argmax(lls[i] / len(choice_i)) with len = number of Unicode code points of the choice WITHOUT the delimiter (lm-eval's acc_norm; NOT bytes); pred_acc_bytes = same with len(choice.encode('utf-8')) (lm-eval's acc_bytes metric, not reported for these tasks); argmax ties -> lowest index [lm_eval/api/task.py ConfigurableTask.process_results]",
}


# ---------------------------------------------------------------- lm-eval formatting (pure Python)

def _jinja():
    import jinja2  # lm_eval/utils.py: env = Environment(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)
    return jinja2.Environment(loader=jinja2.BaseLoader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(template, doc):
    return _jinja().from_string(template).render(**doc)  # lm_eval/utils.py apply_template


def render_choices(template, doc):
    return ast.literal_eval(render(template, doc))  # lm_eval/api/task.py ConfigurableTask.doc_to_choice


def strip_prefix(s, p):
    assert s.startswith(p), s
    return s[len(p):]


def arc_doc(d):
    # Rebuild the allenai/ai2_arc fields lm-eval's template reads from our lm-eval-style row.
    return {"question": strip_prefix(d["query"], "Question: "), "choices": {"text": d["choices"]}, "gold": d["gold"]}


def piqa_doc(d):
    assert len(d["choices"]) == 2
    return {"goal": strip_prefix(d["query"], "Question: "), "sol1": d["choices"][0], "sol2": d["choices"][1], "label": d["gold"]}


def mmlu_doc(row):
    return {"question": row["question"], "choices": [row[f"choice{i}"] for i in range(4)], "answer": int(row["answer"])}


def mmlu_description(subject):
    # lm_eval/tasks/mmlu/_generate_configs.py -> mmlu_<subject>.yaml "description"
    return f"The following are multiple choice questions (with answers) about {' '.join(subject.split('_'))}.\n\n"


def mmlu_continuation_description(subject):
    # lm_eval/tasks/mmlu/continuation/mmlu_<subject>.yaml "description" (no "multiple choice")
    return f"The following are questions (with answers) about {' '.join(subject.split('_'))}.\n\n"


def fewshot_context(description, shots, text_fn, answer_fn, doc):
    """lm_eval/api/task.py ConfigurableTask.fewshot_context + build_qa_turn, plain text (no chat template)."""
    out = description
    for fs in shots:
        out += text_fn(fs) + TARGET_DELIMITER + answer_fn(fs) + FEWSHOT_DELIMITER
    return out + text_fn(doc)


def load_jsonl(path, n=None):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
            if n is not None and len(out) == n:
                break
    return out


def load_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def build_mc_requests(data):
    """[(task, doc_index, shots, context, choices_without_delimiter, gold)]"""
    reqs = []
    arc = load_jsonl(os.path.join(data, "mc/arc_easy.jsonl"))
    for i in list(range(N_MC)) + EXTRA_MC["arc_easy"]:
        d = arc[i]
        doc = arc_doc(d)
        ctx = fewshot_context("", [], lambda x: render(ARC_TEXT, x), None, doc)
        assert ctx == d["query"] + "\nAnswer:"
        choices = render_choices(ARC_CHOICE, doc)
        assert choices == d["choices"]
        reqs.append(("arc_easy", i, 0, ctx, choices, doc["gold"]))
    piqa = load_jsonl(os.path.join(data, "mc/piqa.jsonl"))
    for i in list(range(N_MC)) + EXTRA_MC["piqa"]:
        d = piqa[i]
        doc = piqa_doc(d)
        ctx = fewshot_context("", [], lambda x: render(PIQA_TEXT, x), None, doc)
        assert ctx == d["query"] + "\nAnswer:"
        choices = render_choices(PIQA_CHOICE, doc)
        assert choices == d["choices"]
        reqs.append(("piqa", i, 0, ctx, choices, doc["label"]))
    for subject in MMLU_SUBJECTS:
        dev = [mmlu_doc(r) for r in load_csv(os.path.join(data, f"mmlu/dev/{subject}_dev.csv"))]
        test = [mmlu_doc(r) for r in load_csv(os.path.join(data, f"mmlu/test/{subject}_test.csv"))]
        text = lambda x: render(MMLU_TEXT, x)
        answer = lambda x: MMLU_CHOICES[x["answer"]]  # build_qa_turn: c[a] with c = doc_to_choice, a = doc_to_target
        for shots, n in ((0, N_MMLU_0), (5, N_MMLU_5)):
            for i in range(n):
                doc = test[i]
                fs = dev[:shots]  # FirstNSampler.sample: pool[:n] (eval doc not in dev)
                ctx = fewshot_context(mmlu_description(subject), fs, text, answer, doc)
                # the same string without Jinja, as a C++ port would build it
                plain = lambda x: (x["question"].strip() + "".join(f"\n{L}. {c}" for L, c in zip("ABCD", x["choices"])) + "\nAnswer:")
                assert ctx == mmlu_description(subject) + "".join(plain(f) + " " + "ABCD"[f["answer"]] + "\n\n" for f in fs) + plain(doc)
                reqs.append((f"mmlu_{subject}", i, shots, ctx, list(MMLU_CHOICES), doc["answer"]))
        # the cloze form, on the same documents
        text = lambda x: render(MMLU_CONT_TEXT, x)
        answer = lambda x: render_choices(MMLU_CONT_CHOICE, x)[x["answer"]]
        for shots, n in ((0, N_MMLU_0), (5, N_MMLU_5)):
            for i in range(n):
                doc = test[i]
                ctx = fewshot_context(mmlu_continuation_description(subject), dev[:shots], text, answer, doc)
                choices = render_choices(MMLU_CONT_CHOICE, doc)
                assert choices == doc["choices"]
                reqs.append((f"mmlu_continuation_{subject}", i, shots, ctx, choices, doc["answer"]))
    return reqs


# ---------------------------------------------------------------- model side (chroot only)

def patch_gguf_gate():
    # Debian's python3-gguf has no package version, which transformers' version gate cannot parse
    # (same workaround as scripts/transformers_perplexity.py).
    import transformers.utils.import_utils as _iu
    _iu.is_gguf_available = lambda *a, **k: True
    for _m in ("transformers.utils", "transformers.modeling_gguf_pytorch_utils", "transformers.modeling_utils",
               "transformers.tokenization_utils_base", "transformers.configuration_utils"):
        try:
            __import__(_m)
            sys.modules[_m].is_gguf_available = _iu.is_gguf_available
        except (ImportError, AttributeError):
            pass


def resolve_max_length(config, tok):
    # lm_eval/models/utils.py resolve_max_length (HFLM.max_length when max_length is not given)
    cfg = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        v = getattr(cfg, attr, None)
        if v is not None:
            return int(v)
    mml = getattr(tok, "model_max_length", None)
    if mml is not None and mml < 1000000000000000019884624838656:  # transformers' VERY_LARGE_INTEGER sentinel
        return int(mml)
    return 2048


def score(model, torch, context_ids, cont_ids, max_length):
    """lm_eval/models/huggingface.py HFLM._loglikelihood_tokens for one (context, continuation)."""
    assert context_ids and cont_ids
    full = context_ids + cont_ids
    inp = full[-(max_length + 1):][:-1]
    with torch.no_grad():
        logits = model(torch.tensor([inp])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)  # float32, as lm-eval for a float32 model
    sel = logp[len(inp) - len(cont_ids):len(inp)]
    greedy = sel.argmax(dim=-1).tolist()
    toks = [float(sel[j, t].item()) for j, t in enumerate(cont_ids)]
    ll = 0.0
    for v in toks:  # float64 accumulation
        ll += v
    return ll, all(g == t for g, t in zip(greedy, cont_ids)), toks, len(inp), len(full) > max_length + 1


def encode_pair(enc, context, continuation):
    # lm_eval/api/model.py TemplateLM._encode_pair (causal branch)
    n = len(context) - len(context.rstrip())
    if n > 0:
        continuation = context[-n:] + continuation
        context = context[:-n]
    whole = enc(context + continuation)
    ctx = enc(context)
    return ctx, whole[len(ctx):], whole[:len(ctx)] == ctx


def argmax(xs):
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def load_f32_model(args):
    """The model of --model (a directory or a GGUF, which transformers dequantises) in float32.
    Returns torch, transformers, the tokenizer, the model, lm-eval's max_length and whether it
    was a GGUF."""
    patch_gguf_gate()
    import torch, transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(args.threads)
    path, kw = args.model, {}
    if path.endswith(".gguf"):
        path, kw["gguf_file"] = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(path, **kw)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kw).float().eval()
    return torch, transformers, tok, model, resolve_max_length(model.config, tok), bool(kw)


def run_model(args):
    torch, transformers, tok, model, max_length, from_gguf = load_f32_model(args)
    enc = lambda s: tok.encode(s, add_special_tokens=False)
    probe = "Question: x\nAnswer:"
    dflt = tok.encode(probe)
    adds_bos = dflt != enc(probe)
    if adds_bos:
        assert dflt == [tok.bos_token_id] + enc(probe), (dflt, enc(probe))
    reqs = build_mc_requests(args.data)
    samples, stats = [], {}
    for task, idx, shots, ctx, choices, gold in reqs:
        conts = [TARGET_DELIMITER + c for c in choices]
        ctx_ids, cont_ids, lls, greedy, toklp, bos_lls, bos_greedy = None, [], [], [], [], [], []
        matches, inp_len, trunc = True, 0, False
        for cont in conts:
            c_ids, k_ids, ok = encode_pair(enc, ctx, cont)
            assert ctx_ids is None or c_ids == ctx_ids
            ctx_ids = c_ids
            matches &= ok
            ll, g, tl, inp_len, trunc = score(model, torch, c_ids, k_ids, max_length)
            cont_ids.append(k_ids); lls.append(ll); greedy.append(g); toklp.append(tl)
            if adds_bos:
                # lm-eval >= 0.4.9.2 with this tokenizer: enc() adds BOS to both ctx and ctx+cont
                bc, bk, _ = encode_pair(lambda s: tok.encode(s), ctx, cont)
                assert bc == [tok.bos_token_id] + c_ids and bk == k_ids
                bll, bg, _, _, _ = score(model, torch, bc, bk, max_length)
                bos_lls.append(bll); bos_greedy.append(bg)
        lens = [len(c) for c in choices]
        blens = [len(c.encode("utf-8")) for c in choices]
        s = {"task": task, "doc_index": idx, "shots": shots, "context": ctx, "choices": conts,
             "context_ids": ctx_ids, "continuation_ids": cont_ids, "loglikelihoods": lls,
             "token_logprobs": toklp, "is_greedy": greedy, "gold": gold,
             "pred_acc": argmax(lls), "pred_acc_norm": argmax([l / n for l, n in zip(lls, lens)]),
             "pred_acc_bytes": argmax([l / n for l, n in zip(lls, blens)]),
             "choice_len_chars": lens, "choice_len_bytes": blens,
             "whole_prefix_matches_context": matches, "model_input_len": inp_len, "input_truncated": trunc}
        if adds_bos:
            s["bos_variant"] = {"loglikelihoods": bos_lls, "is_greedy": bos_greedy, "pred_acc": argmax(bos_lls),
                                "pred_acc_norm": argmax([l / n for l, n in zip(bos_lls, lens)])}
        samples.append(s)
        extra = idx in EXTRA_MC.get(task, ())
        if extra:
            s["extra_non_ascii_choices"] = True
        st = stats.setdefault(f"{task}/{shots}shot" + ("/extra_non_ascii" if extra else ""), {"n": 0, "acc": 0, "acc_norm": 0})
        st["n"] += 1
        st["acc"] += s["pred_acc"] == gold
        st["acc_norm"] += s["pred_acc_norm"] == gold
        print(f"{task} doc {idx} {shots}-shot: lls={['%.4f' % l for l in lls]} gold={gold} pred={s['pred_acc']}/{s['pred_acc_norm']}"
              f" ctx_tokens={len(ctx_ids)}{' TRUNCATED' if trunc else ''}", file=sys.stderr)
    header = {
        "generator": "scripts/make_eval_goldens.py",
        "transformers": transformers.__version__, "torch": torch.__version__,
        "python": sys.version.split()[0],
        "model": args.model_label or args.model,
        "model_sha256": args.model_sha256,
        "model_loading": "AutoModelForCausalLM.from_pretrained(..., dtype=float32).float().eval()"
                         + ("; GGUF dequantised to float32 by transformers, tokenizer converted from the GGUF by transformers" if from_gguf else ""),
        "tokenizer_class": type(tok).__name__,
        "tokenizer_default_adds_bos": adds_bos,
        "bos_token_id": tok.bos_token_id,
        "max_length": max_length,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": "../shared/data/eval (mc/arc_easy.jsonl = ARC-Easy test, mc/piqa.jsonl = PIQA validation, mmlu/{dev,test}/<subject>_{dev,test}.csv)",
        "rules": RULES,
        "accuracy_on_these_samples": {k: {"n": v["n"], "acc": v["acc"] / v["n"], "acc_norm": v["acc_norm"] / v["n"]} for k, v in stats.items()},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"header": header, "samples": samples}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(json.dumps(header["accuracy_on_these_samples"]), file=sys.stderr)


# ---------------------------------------------------------------- GSM8K prompts (no model)

def regex_filter(resp, pattern, group_select, fallback="[invalid]"):
    # lm_eval/filters/extraction.py RegexFilter.apply (one response)
    match = re.compile(pattern).findall(resp)
    if not match:
        return fallback
    match = match[group_select]
    if isinstance(match, tuple):
        match = [m for m in match if m]
        match = match[0] if match else fallback
    return match.strip()


def em_normalise(s):
    # lm_eval/api/metrics.py exact_match_hf_evaluate with gsm8k.yaml's regexes_to_ignore, ignore_case
    for r in GSM8K_IGNORE:
        s = re.sub(r, "", s)
    return s.lower()


def run_gsm8k(args):
    train = load_jsonl(os.path.join(args.data, "gsm8k/train.jsonl"))
    test = load_jsonl(os.path.join(args.data, "gsm8k/test.jsonl"), 2)
    text = lambda x: render(GSM8K_TEXT, x)
    target = lambda x: render(GSM8K_TARGET, x)
    # ContextSampler (default sampler): one random.Random(1234) per task, set by
    # evaluator.simple_evaluate -> task.set_fewshot_seed(fewshot_random_seed); build_all_requests
    # walks the eval docs in order and each doc draws rnd.sample(list(train), 5) (fewshot split
    # 'train' != test split, so no eval-doc removal and no extra draw). random.sample only
    # depends on len(population), so sampling indices is equivalent.
    rnd = random.Random(GSM8K_SEED)
    prompts = []
    for i, doc in enumerate(test):
        idx = rnd.sample(list(range(len(train))), 5)
        ctx = fewshot_context("", [train[j] for j in idx], text, target, doc)
        prompts.append({"doc_index": i, "fewshot_train_indices": idx, "context": ctx,
                        "gold_answer": doc["answer"],
                        "gold_normalised": em_normalise(doc["answer"])})
    ex = ["Natalia sold 48/2 = 24 clips.\n#### 72", "The answer is $1,234.50.", "#### -3\n#### 4", "so 5 apples and 12 pears",
          "no digits here", "It costs $18. So the answer is 18."]
    extraction = [{"response": r,
                   "strict_match": regex_filter(r, GSM8K_STRICT, 0),
                   "flexible_extract": regex_filter(r, GSM8K_FLEXIBLE, -1),
                   "strict_normalised": em_normalise(regex_filter(r, GSM8K_STRICT, 0)),
                   "flexible_normalised": em_normalise(regex_filter(r, GSM8K_FLEXIBLE, -1))} for r in ex]
    header = {
        "generator": "scripts/make_eval_goldens.py --gsm8k",
        "lm_eval_source": LM_EVAL_REF,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": "../shared/data/eval/gsm8k/{train,test}.jsonl (openai/gsm8k 'main' train 7473 / test 1319, same order)",
        "task": "gsm8k (lm_eval/tasks/gsm8k/gsm8k.yaml, version 3.0): output_type generate_until, test split, "
                "few-shot split train, num_fewshot 5, doc_to_text 'Question: {{question}}\\nAnswer:', doc_to_target "
                "'{{answer}}' = the FULL solution text including the <<...>> calculator annotations and the final '#### N' line, "
                "target_delimiter ' ', fewshot_delimiter '\\n\\n', no description. Prompt = sum('Question: ' + q + '\\nAnswer: ' + answer + '\\n\\n') + 'Question: ' + test_q + '\\nAnswer:'.",
        "fewshot_sampling": "Default sampler (lm_eval/api/samplers.py ContextSampler; v0.4.9 same): rnd = random.Random(fewshot_seed), "
                            "fewshot_seed default 1234 (lm_eval/defaults.py DEFAULT_OTHER_SEED; CLI --seed default '0,1234,1234,1234', 4th value), "
                            "created once per task (Task.set_fewshot_seed in lm_eval/evaluator.py). Docs are processed in order (build_all_requests, "
                            "rank 0, world_size 1; --limit takes a prefix) and each doc consumes rnd.sample(list(train_docs), 5) -- the examples of doc i "
                            "depend on all draws for docs 0..i-1, in CPython's Mersenne Twister + random.sample (set-based branch for n=7473, k=5: "
                            "repeated _randbelow(n) via getrandbits, skipping repeats). Selected docs keep the sampled order. No eval-doc removal (train != test). "
                            "Reproducing it outside CPython needs MT19937 seeded the way CPython's random.seed(int) does (init_by_array on the 32-bit words of abs(seed)) "
                            "and the same _randbelow; or ship the index lists.",
        "generation": "until = ['Question:', '</s>', '<|im_end|>'] + the decoded EOS token if not already present "
                      "(lm_eval/models/utils.py handle_stop_sequences); greedy (do_sample false, temperature 0); max_gen_toks 256 "
                      "(HFLM.max_gen_toks); context left-truncated to max_length - 256 tokens; the decoded continuation "
                      "(skip_special_tokens) is cut before the first occurrence of each stop string in list order "
                      "(postprocess_generated_text: for term in until: s = s.split(term)[0]); BOS as for loglikelihood (tok_batch_encode).",
        "filters": "strict-match: regex '#### (\\-?[0-9\\.\\,]+)', group_select 0 (first match), then take_first; "
                   "flexible-extract: regex '(-?[$0-9.,]{2,})|(-?[0-9]+)', group_select -1 (LAST match; a tuple match takes its first "
                   "non-empty group), then take_first; each strips the match; no match -> '[invalid]' "
                   "(lm_eval/filters/extraction.py RegexFilter, lm_eval/filters/selection.py TakeFirstFilter).",
        "metric": "exact_match per filter: reference = the full doc answer; both the filtered response and the reference get "
                  "re.sub(r, '', s) for r in [',', '\\$', '(?s).*#### ', '\\.$'] in that order, then lower() (ignore_case true, "
                  "ignore_punctuation false); score = equality (lm_eval/api/metrics.py exact_match_hf_evaluate, gsm8k.yaml metric_list).",
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"header": header, "prompts": prompts, "extraction_examples": extraction}, f, ensure_ascii=False, indent=1)
        f.write("\n")


# ---------------------------------------------------------------- host driver

def host(args):
    work = tempfile.mkdtemp(dir=ROOT, prefix=".goldens-eval-")
    try:
        data = os.path.join(work, "data")
        for rel in ["mc/arc_easy.jsonl", "mc/piqa.jsonl", "gsm8k/train.jsonl", "gsm8k/test.jsonl"] + \
                   [f"mmlu/{sp}/{s}_{sp}.csv" for s in MMLU_SUBJECTS for sp in ("dev", "test")]:
            os.makedirs(os.path.dirname(os.path.join(data, rel)), exist_ok=True)
            shutil.copy(os.path.join(args.data, rel), os.path.join(data, rel))
        gguf = os.path.join(work, os.path.basename(args.gguf))
        shutil.copy(args.gguf, gguf)
        sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
        me = os.path.relpath(os.path.abspath(__file__), ROOT)
        rel = lambda p: os.path.relpath(p, ROOT)
        jobs = [
            ["--model", "models/default", "--model-label", "models/default", "--model-sha256",
             sha(os.path.join(ROOT, "models/default/model.safetensors")), "--out", f"{OUT_DIR}/lm_eval_mc_default.json"],
            ["--model", rel(gguf), "--model-label", args.gguf, "--model-sha256", sha(args.gguf),
             "--out", f"{OUT_DIR}/lm_eval_mc_smollm2-135m-instruct-q4_1.json"],
            ["--gsm8k", "--out", f"{OUT_DIR}/gsm8k_prompts.json"],
        ]
        for j in jobs:
            subprocess.run([REF, "python3", me, "--inner", "--data", rel(data), "--threads", str(args.threads)] + j,
                           cwd=ROOT, check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def arguments(description):
    """The options the host driver passes to its --inner runs (shared with
    make_eval_rolling_gen_goldens.py)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--inner", action="store_true", help="run the computation here (inside the reference chroot)")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--model")
    ap.add_argument("--model-label")
    ap.add_argument("--model-sha256")
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int, default=1)
    return ap


def main():
    ap = arguments(__doc__.split("\n\n")[0])
    ap.add_argument("--gsm8k", action="store_true", help="with --inner: write the GSM8K prompt file")
    args = ap.parse_args()
    if not args.inner:
        host(args)
    elif args.gsm8k:
        run_gsm8k(args)
    else:
        run_model(args)


if __name__ == "__main__":
    main()
