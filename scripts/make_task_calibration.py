#!/usr/bin/env python3
"""Free-MoE protocol 2 (domains from tasks, as the paper calibrates): calibration texts and
held-out evaluation halves from ../shared/data/eval, split by a recorded seed.

    python3 scripts/make_task_calibration.py [--data ../shared/data/eval] [--out data/taskcal] [--seed 1234]

Domains (one calibration text each, the documents written as the harness prompts them, with
their gold answers, separated by blank lines):
  arc_easy  half of ARC-Easy (the other half: arc_easy_eval.jsonl)
  piqa      half of PIQA     (the other half: piqa_eval.jsonl)
  mmlu      the MMLU dev split (the test split is evaluated)
  gsm8k     the GSM8K train split (the test split is evaluated)
Writes split.json with the seed and the document indices of each half. Standard library only.
"""
import argparse, csv, glob, json, os, random


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/eval")
    ap.add_argument("--out", default="data/taskcal")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    split = {"seed": a.seed}
    for name in ("arc_easy", "piqa"):
        docs = read_jsonl(os.path.join(a.data, "mc", name + ".jsonl"))
        idx = list(range(len(docs)))
        random.Random(a.seed).shuffle(idx)
        cal, ev = sorted(idx[: len(idx) // 2]), sorted(idx[len(idx) // 2:])
        split[name] = {"calibration": cal, "evaluation": ev}
        write(os.path.join(a.out, name + ".txt"),
              "".join(f"{docs[i]['query']}\nAnswer: {docs[i]['choices'][docs[i]['gold']]}\n\n" for i in cal))
        write(os.path.join(a.out, name + "_eval.jsonl"), "".join(json.dumps(docs[i]) + "\n" for i in ev))
    parts = []
    for path in sorted(glob.glob(os.path.join(a.data, "mmlu", "dev", "*_dev.csv"))):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        for r in rows[1:] if rows and rows[0][0] == "question" else rows:
            q, c, ans = r[0].strip(), r[1:5], r[5].strip()
            gold = "ABCD"[int(ans)] if ans.isdigit() else ans
            parts.append(f"{q}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer: {gold}\n\n")
    write(os.path.join(a.out, "mmlu.txt"), "".join(parts))
    gsm = read_jsonl(os.path.join(a.data, "gsm8k", "train.jsonl"))
    write(os.path.join(a.out, "gsm8k.txt"), "".join(f"Question: {d['question']}\nAnswer: {d['answer']}\n\n" for d in gsm))
    write(os.path.join(a.out, "split.json"), json.dumps(split) + "\n")
    print(f"wrote {a.out}: arc_easy/piqa halves ({len(split['arc_easy']['calibration'])}/{len(split['piqa']['calibration'])} "
          f"calibration documents), mmlu dev ({len(parts)} questions), gsm8k train ({len(gsm)} problems)")


if __name__ == "__main__":
    main()
