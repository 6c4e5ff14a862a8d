#!/usr/bin/env python3
"""The LoRA-library experiment (docs/lora.md): builds 12 text tasks, trains one adapter per held-in
task and then its PHATGOOSE gates, writes each adapter's description, and compares the routings
with `moeforge lora eval` (loss on each task's test text) and, with --accuracy, `moeforge eval`
(accuracy on the test halves of multiple-choice sets, every document routed by its own prompt).
Standard library only; run from the repository root after `make`.

    python3 scripts/lora_library_experiment.py [--out build-ref/lora-exp] [--steps 200] [--rank 8]

The default model runs the full library; scripts/lora_library_smollm2.sh runs a smaller one on
SmolLM2-135M-Instruct (--base, --eval-model, --held-in, --held-out, --describe examples, --accuracy).

Held-in tasks (an adapter each): gsm8k, arc, piqa, mmlu-stem, mmlu-humanities, mmlu-social,
code, prose. Held-out tasks (no adapter): mmlu-other, wikitext, reference, math. Multiple-
choice sets become text as "question + correct answer" (the default model is too small to
score the choices above chance, so the measure is the loss on the task's text); train and test
halves are split by a recorded seed. The descriptions are written here by hand, one sentence
per task: GLIDER's "given by the user" option (the 3M default model cannot write them).
"""
import argparse, csv, glob, json, os, random, shlex, subprocess, sys

SHARED = os.environ.get("MOEFORGE_SHARED", "../shared")
EVAL = os.path.join(SHARED, "data/eval")
CORPUS = "data/corpus"
MF = os.environ.get("MOEFORGE", "build/bin/moeforge")
BASE = "models/default"
SEED = 20261205
MAX_CHARS = 400_000

HELD_IN = {
    "gsm8k": "Grade school math word problems solved step by step with the final number.",
    "arc": "Grade school science exam questions with the correct answer.",
    "piqa": "Everyday physical tasks and a practical way to do them.",
    "mmlu-stem": "Exam questions in mathematics, physics, chemistry, biology and computer science with answers.",
    "mmlu-humanities": "Exam questions in history, law, philosophy and ethics with answers.",
    "mmlu-social": "Exam questions in economics, psychology, politics, geography and sociology with answers.",
    "code": "Source code: Python, C headers and Perl, with comments.",
    "prose": "Narrative fiction and novels in English.",
}
HELD_OUT = ["mmlu-other", "wikitext", "reference", "math"]


def halves(items, seed):
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[: len(items) // 2], items[len(items) // 2 :]


def mc_text(rows):
    return "".join(f"{r['query']}\nAnswer: {r['choices'][r['gold']]}\n\n" for r in rows)


def mmlu_rows(category):
    sys.path.insert(0, "scripts")
    cats = mmlu_categories()
    rows = []
    for split in ("dev", "test"):
        for f in sorted(glob.glob(os.path.join(EVAL, "mmlu", split, "*.csv"))):
            subject = os.path.basename(f).rsplit("_", 1)[0]
            if cats.get(subject, "other") != category:
                continue
            with open(f, newline="") as fh:
                for r in csv.DictReader(fh):
                    rows.append(f"Question: {r['question']}\nAnswer: {r['choice' + r['answer']]}\n\n")
    return rows


def mmlu_categories():
    # The MMLU paper's groups, as eval/tasks.cpp has them.
    src = open("eval/tasks.cpp").read()
    cats = {}
    for block, name in [(0, "stem"), (1, "humanities"), (2, "social_sciences"), (3, "other")]:
        part = src.split("for (const char* s : {")[1 + block].split("})")[0]
        for s in part.replace("\n", " ").split(","):
            s = s.strip().strip('"')
            if s:
                cats[s] = name
    return cats


def build_tasks(out):
    tasks = {}
    gsm = lambda f: "".join(f"Question: {j['question']}\nAnswer: {j['answer']}\n\n" for j in map(json.loads, open(f)))
    tasks["gsm8k"] = (gsm(os.path.join(EVAL, "gsm8k/train.jsonl")), gsm(os.path.join(EVAL, "gsm8k/test.jsonl")))
    for name, f in [("arc", "mc/arc_easy.jsonl"), ("piqa", "mc/piqa.jsonl")]:
        rows = [json.loads(l) for l in open(os.path.join(EVAL, f))]
        tr, te = halves(rows, SEED)
        tasks[name] = (mc_text(tr), mc_text(te))
    for name, cat in [("mmlu-stem", "stem"), ("mmlu-humanities", "humanities"), ("mmlu-social", "social_sciences"),
                      ("mmlu-other", "other")]:
        tr, te = halves(mmlu_rows(cat), SEED)
        tasks[name] = ("".join(tr), "".join(te))
    for name in ["code", "prose", "reference", "math"]:
        tasks[name] = (open(os.path.join(CORPUS, name, "train.txt")).read(MAX_CHARS),
                       open(os.path.join(CORPUS, name, "test.txt")).read(MAX_CHARS))
    tasks["wikitext"] = ("", open(os.path.join(EVAL, "wikitext2/test.txt")).read(MAX_CHARS))
    for name, (tr, te) in tasks.items():
        d = os.path.join(out, "tasks", name)
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "train.txt"), "w").write(tr[:MAX_CHARS])
        open(os.path.join(d, "test.txt"), "w").write(te[:MAX_CHARS])
    return tasks


def write_examples(out, name, n=3, chars=300):
    """The first n blank-line-separated pieces of the task's train text, for the base model to
    describe the task from (GLIDER's self-written descriptions)."""
    text = open(os.path.join(out, "tasks", name, "train.txt")).read(200_000)
    pieces = [p.strip()[:chars] for p in text.split("\n\n") if len(p.strip()) > 40][:n]
    path = os.path.join(out, "tasks", name, "examples.jsonl")
    with open(path, "w") as f:
        for p in pieces:
            f.write(json.dumps({"text": p}) + "\n")
    return path


def train_adapter(out, name, args):
    run = os.path.join(out, "adapters", name)
    cfg = {"lora": {"base": args.base, "rank": args.rank, "alpha": 2 * args.rank, "targets": ["all"]},
           "train": {name: os.path.join(out, "tasks", name, "train.txt")},
           "optim": {"lr": args.lr, "min_lr": args.lr / 10, "warmup_steps": min(20, max(2, args.steps // 5)),
                     "weight_decay": 0.0},
           "batch_size": args.batch_size, "seq_len": args.seq_len, "steps": args.steps, "eval_every": args.steps, "eval_batches": 2,
           "checkpoint_every": args.steps, "log_every": 50, "threads": 2, "seed": SEED}
    os.makedirs(os.path.join(out, "configs"), exist_ok=True)
    path = os.path.join(out, "configs", name + ".json")
    json.dump(cfg, open(path, "w"), indent=1)
    if args.retrain or not os.path.exists(os.path.join(run, "adapter_config.json")):
        subprocess.run([MF, "train", "--config", path, "--out", run, "--fresh"], check=True)
    # PHATGOOSE's second stage: the adapter frozen, one gate vector per map, on the same data.
    gcfg = dict(cfg, lora={"base": args.base, "gates_for": run}, steps=args.gate_steps, eval_every=args.gate_steps,
                checkpoint_every=args.gate_steps, optim=dict(cfg["optim"], lr=1e-2, min_lr=1e-3, warmup_steps=5))
    gpath = os.path.join(out, "configs", name + "-gates.json")
    json.dump(gcfg, open(gpath, "w"), indent=1)
    gated = run + "-gated"
    if args.retrain or not os.path.exists(os.path.join(gated, "gates.safetensors")):
        subprocess.run([MF, "train", "--config", gpath, "--out", gated, "--fresh"], check=True)
    describe(out, name, gated, args)
    return gated


def describe(out, name, adapter, args):
    how = ["--text", HELD_IN[name]] if args.describe == "given" else ["--examples", write_examples(out, name)]
    subprocess.run([MF, "lora", "describe", adapter, "-m", args.eval_model] + how, check=True, stdout=subprocess.DEVNULL)
    return open(os.path.join(adapter, "description.txt")).read().strip()


def write_mc_halves(out, names):
    """The test halves of the multiple-choice sets (the adapters trained on the other halves)."""
    files = {}
    for name in names:
        src = {"arc": "mc/arc_easy.jsonl", "piqa": "mc/piqa.jsonl"}.get(name)
        if not src:
            sys.exit(f"--accuracy: {name} is not a multiple-choice set (arc, piqa)")
        rows = [json.loads(l) for l in open(os.path.join(EVAL, src))]
        _, te = halves(rows, SEED)
        files[name] = os.path.join(out, "tasks", name, "test.jsonl")
        with open(files[name], "w") as f:
            for r in te:
                f.write(json.dumps(r) + "\n")
    return files


def accuracy(out, runs, held_in, files, args):
    """moeforge eval on each route: accuracy per task, and for prior routes the share of documents
    whose prior ranks the task's own adapter first."""
    lib = [a for n, d in runs.items() for a in ("--lora", f"{n}={d}")]
    res = {}
    for route in args.routes.split(","):
        for task, f in files.items():
            if route == "oracle":
                if task not in held_in:
                    continue
                flags = ["--lora", f"{task}={runs[task]}"]
            elif route == "base":
                flags = []
            else:
                flags = lib + ["--lora-route", route]
            cmd = [MF, "eval", "-m", args.eval_model, "--tasks", "", "--task-file", f"{task}={f}", "--limit",
                   str(args.accuracy_limit), "-t", "2", "-q", "--json"] + flags
            print(" ".join(map(shlex.quote, cmd)), file=sys.stderr)
            j = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["tasks"][task]
            row = {"acc": j["metrics"]["acc"], "acc_norm": j["metrics"]["acc_norm"], "n": j["n"], "seconds": j.get("seconds")}
            routes = j.get("routes", {})
            if any(k.startswith("prior:") for k in routes):
                row["prior_top1_is_own"] = routes.get("prior:" + task, 0) / j["n"]
                row["prior_top1"] = routes
            res.setdefault(route, {})[task] = row
    json.dump(res, open(os.path.join(out, "accuracy.json"), "w"), indent=1)
    lines = ["| route | " + " | ".join(f"{t} acc | {t} acc_norm" for t in files) + " |",
             "|---|" + "---:|---:|" * len(files)]
    for route, by_task in res.items():
        cells = []
        for t in files:
            r = by_task.get(t)
            cells += ["-", "-"] if r is None else [f"{r['acc']['value']:.3f} ({r['acc']['stderr']:.3f})",
                                                    f"{r['acc_norm']['value']:.3f} ({r['acc_norm']['stderr']:.3f})"]
        lines.append(f"| {route} | " + " | ".join(cells) + " |")
    for route, by_task in res.items():  # the global router's own accuracy, on held-in tasks
        own = [(t, r["prior_top1_is_own"]) for t, r in by_task.items() if "prior_top1_is_own" in r and t in held_in]
        if own:
            lines.append(f"\n{route}: the prior ranks the task's own adapter first on " +
                         ", ".join(f"{share:.3f} of {t}" for t, share in own) + " documents")
    open(os.path.join(out, "accuracy.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="build-ref/lora-exp")
    ap.add_argument("--base", default=BASE, help="the trainer's base: a Hugging Face directory")
    ap.add_argument("--eval-model", help="the model the evaluation and descriptions run on (default: --base)")
    ap.add_argument("--held-in", default=",".join(HELD_IN), help="tasks with an adapter, from: " + ",".join(HELD_IN))
    ap.add_argument("--held-out", default=",".join(HELD_OUT), help="tasks without one")
    ap.add_argument("--describe", choices=["given", "examples"], default="given",
                    help="descriptions as written here, or by the base model from 3 examples of the train text")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--accuracy", default="", help="multiple-choice sets (arc, piqa) scored by moeforge eval, per route")
    ap.add_argument("--accuracy-limit", type=int, default=200, help="documents of each test half")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--gate-steps", type=int, default=50)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--skip-training", action="store_true", help="evaluate the adapters (with gates) already in OUT")
    ap.add_argument("--retrain", action="store_true", help="train adapters again even if OUT has them")
    ap.add_argument("--skip-loss", action="store_true", help="only the accuracy runs (--accuracy), not the loss on every task's text")
    ap.add_argument("--routes", default="base,oracle,uniform,arrow,gates,global,glider,glider-gates")
    ap.add_argument("--extra", default="", help='more arguments for lora eval, one string (e.g. "--glider-alpha 2")')
    args = ap.parse_args()
    args.eval_model = args.eval_model or args.base
    held_in = [n for n in args.held_in.split(",") if n]
    held_out = [n for n in args.held_out.split(",") if n]
    for n in held_in:
        if n not in HELD_IN:
            sys.exit(f"--held-in: unknown task {n} (known: {', '.join(HELD_IN)})")
    build_tasks(args.out)
    runs = {}
    for n in held_in:
        runs[n] = os.path.join(args.out, "adapters", n + "-gated")
        if args.skip_training:
            describe(args.out, n, runs[n], args)
        else:
            train_adapter(args.out, n, args)
    descriptions = {n: open(os.path.join(d, "description.txt")).read().strip() for n, d in runs.items()}
    json.dump(descriptions, open(os.path.join(args.out, "descriptions.json"), "w"), indent=1)
    if args.skip_loss:
        if args.accuracy:
            accuracy(args.out, runs, held_in, write_mc_halves(args.out, [n for n in args.accuracy.split(",") if n]), args)
        return
    cmd = [MF, "lora", "eval", "-m", args.eval_model, "--windows", str(args.windows), "--json", "--report", os.path.join(args.out, "report.md"),
           "--routes", args.routes]
    for n, d in runs.items():
        cmd += ["--lora", f"{n}={d}"]
    for n in held_in + held_out:
        cmd += ["--task", f"{n}={os.path.join(args.out, 'tasks', n, 'test.txt')}"]
    cmd += shlex.split(args.extra)
    print(" ".join(cmd), file=sys.stderr)
    res = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    open(os.path.join(args.out, "results.json"), "w").write(res)
    print(open(os.path.join(args.out, "report.md")).read())
    j = json.loads(res)
    for route in ("global", "glider"):
        if route in j["routes"]:
            acc = [v["prior_top1_is_own"] for v in j["routes"][route].values() if "prior_top1_is_own" in v]
            if acc:
                print(f"global router top-1 = the task's own adapter ({route}): {sum(acc) / len(acc):.3f} of held-in windows")
                break
    if args.accuracy:
        accuracy(args.out, runs, held_in, write_mc_halves(args.out, [n for n in args.accuracy.split(",") if n]), args)


if __name__ == "__main__":
    main()
