#!/usr/bin/env python3
"""Paired comparison of `moeforge eval --records` files scored on the same documents.

    python3 scripts/compare_eval_records.py BASE.jsonl OTHER.jsonl [OTHER.jsonl ...]

For each OTHER against BASE, over the documents both scored: accuracy and its change in
points, win/loss (documents only one of the two gets right), and the mean change of the gold
answer's log-probability among the choices (log-softmax of the choices' summed
log-likelihoods) with its paired standard error. Exits 1 with a message on a missing file,
a malformed line, or no shared documents.
"""
import json, math, sys


def load(path):
    out = {}
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    d = json.loads(line)
                    ll = d["loglikelihoods"]
                    m = max(ll)
                    lse = m + math.log(sum(math.exp(x - m) for x in ll))
                    out[d["id"]] = (float(d["acc"]), ll[d["gold"]] - lse)
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    sys.exit(f"{path}: line {n}: not an eval record ({e})")
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}")
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().split("\n\n")[1])
    base = load(sys.argv[1])
    print("file\tacc\td_acc\twin/loss\td_logp\tse\tn")
    for path in sys.argv[2:]:
        other = load(path)
        ids = [i for i in base if i in other]
        if len(ids) < 2:
            sys.exit(f"{path}: fewer than 2 documents shared with {sys.argv[1]}")
        acc = 100 * sum(other[i][0] for i in ids) / len(ids)
        d_acc = acc - 100 * sum(base[i][0] for i in ids) / len(ids)
        win = sum(other[i][0] > base[i][0] for i in ids)
        loss = sum(other[i][0] < base[i][0] for i in ids)
        d = [other[i][1] - base[i][1] for i in ids]
        mean = sum(d) / len(d)
        se = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d))
        print(f"{path}\t{acc:.2f}\t{d_acc:+.2f}\t{win}/{loss}\t{mean:+.2f}\t{se:.2f}\t{len(ids)}")


if __name__ == "__main__":
    main()
