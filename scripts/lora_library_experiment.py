#!/usr/bin/env python3
"""The LoRA-library experiment on the default model (docs/lora.md): builds 12 text tasks, trains
one adapter per held-in task and then its PHATGOOSE gates, writes each adapter's description, and compares the routings with
`moeforge lora eval`. Standard library only; run from the repository root after `make`.

    python3 scripts/lora_library_experiment.py [--out build-ref/lora-exp] [--steps 200] [--rank 8]

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


def train_adapter(out, name, args):
    run = os.path.join(out, "adapters", name)
    cfg = {"lora": {"base": BASE, "rank": args.rank, "alpha": 2 * args.rank, "targets": ["all"]},
           "train": {name: os.path.join(out, "tasks", name, "train.txt")},
           "optim": {"lr": args.lr, "min_lr": args.lr / 10, "warmup_steps": 20, "weight_decay": 0.0},
           "batch_size": 8, "seq_len": 128, "steps": args.steps, "eval_every": args.steps, "eval_batches": 2,
           "checkpoint_every": args.steps, "log_every": 50, "threads": 2, "seed": SEED}
    os.makedirs(os.path.join(out, "configs"), exist_ok=True)
    path = os.path.join(out, "configs", name + ".json")
    json.dump(cfg, open(path, "w"), indent=1)
    if args.retrain or not os.path.exists(os.path.join(run, "adapter_config.json")):
        subprocess.run([MF, "train", "--config", path, "--out", run, "--fresh"], check=True)
    # PHATGOOSE's second stage: the adapter frozen, one gate vector per map, on the same data.
    gcfg = dict(cfg, lora={"base": BASE, "gates_for": run}, steps=args.gate_steps, eval_every=args.gate_steps,
                checkpoint_every=args.gate_steps, optim=dict(cfg["optim"], lr=1e-2, min_lr=1e-3, warmup_steps=5))
    gpath = os.path.join(out, "configs", name + "-gates.json")
    json.dump(gcfg, open(gpath, "w"), indent=1)
    gated = run + "-gated"
    subprocess.run([MF, "train", "--config", gpath, "--out", gated, "--fresh"], check=True)
    subprocess.run([MF, "lora", "describe", gated, "-m", BASE, "--text", HELD_IN[name]], check=True, stdout=subprocess.DEVNULL)
    return gated


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="build-ref/lora-exp")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--gate-steps", type=int, default=50)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--skip-training", action="store_true", help="evaluate the adapters (with gates) already in OUT")
    ap.add_argument("--retrain", action="store_true", help="train adapters again even if OUT has them")
    ap.add_argument("--routes", default="base,oracle,uniform,arrow,gates,global,glider,glider-gates")
    ap.add_argument("--extra", default="", help='more arguments for lora eval, one string (e.g. "--glider-alpha 2")')
    args = ap.parse_args()
    build_tasks(args.out)
    runs = {n: (os.path.join(args.out, "adapters", n + "-gated") if args.skip_training else train_adapter(args.out, n, args))
            for n in HELD_IN}
    cmd = [MF, "lora", "eval", "-m", BASE, "--windows", str(args.windows), "--json", "--report", os.path.join(args.out, "report.md"),
           "--routes", args.routes]
    for n, d in runs.items():
        cmd += ["--lora", f"{n}={d}"]
    for n in list(HELD_IN) + HELD_OUT:
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


if __name__ == "__main__":
    main()
