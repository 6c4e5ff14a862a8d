#!/usr/bin/env bash
# Checks a corpus built by scripts/build_corpus.py (default data/corpus):
#   - manifest.json matches the files (sha256, bytes, documents), every domain has 3 splits,
#     train within the cap, valid/test at least 150 KB each;
#   - no leftovers of the conversions (HTML attributes, roff requests/font escapes, GSM8K
#     calculator annotations), math items are "Question: ... Answer: ... The answer is N.";
#   - no evaluation item leaks in: GSM8K test questions and WikiText-2 test article titles
#     never occur in any split, and no split shares a document with another.
# With REBUILD=1 it first rebuilds the corpus twice into a temporary folder (about 1-2 min
# each on 2 cores) and requires byte-identical outputs, then checks that copy.
#
#   tests/e2e/test_corpus.sh [CORPUS_DIR]        exit 0 = pass, 1 = fail, 77 = no corpus (skip)
set -euo pipefail
cd "$(dirname "$0")/../.."
CORPUS="${1:-data/corpus}"
SHARED="${MF_SHARED:-../shared}"

if [[ "${REBUILD:-0}" == 1 ]]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 scripts/build_corpus.py --out "$tmp/a" --cache-dir "$tmp/cache" 2>"$tmp/a.log" || { cat "$tmp/a.log"; exit 1; }
  python3 scripts/build_corpus.py --out "$tmp/b" --cache-dir "$tmp/cache" --jobs 1 2>"$tmp/b.log" || { cat "$tmp/b.log"; exit 1; }
  for f in {code,math,prose,reference}/{train,valid,test}.txt; do
    cmp -s "$tmp/a/$f" "$tmp/b/$f" || { echo "FAIL: rebuild not deterministic: $f differs"; exit 1; }
  done
  # the manifests differ only in the --out folder named in "command"
  python3 -c 'import json,sys; a,b=(json.load(open(p)) for p in sys.argv[1:]); [m.pop("command") for m in (a,b)]; sys.exit(a!=b)' \
    "$tmp/a/manifest.json" "$tmp/b/manifest.json" || { echo "FAIL: rebuild not deterministic: manifest.json differs"; exit 1; }
  echo "ok: two rebuilds are byte-identical"
  CORPUS="$tmp/a"
fi

if [[ ! -f "$CORPUS/manifest.json" ]]; then
  echo "SKIP: no corpus at $CORPUS (build it: python3 scripts/build_corpus.py --out $CORPUS)"
  exit 77
fi

python3 - "$CORPUS" "$SHARED" <<'EOF'
import hashlib, json, re, sys
from pathlib import Path

corpus, shared = Path(sys.argv[1]), Path(sys.argv[2])
m = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
fails = []

def fail(msg):
    fails.append(msg)
    print("FAIL:", msg)

cap = m["options"]["max_mb_per_domain"] * 1e6
texts = {}
for domain in ("code", "math", "prose", "reference"):
    dm = m["domains"].get(domain)
    if not dm:
        fail(f"domain {domain} missing from manifest")
        continue
    for split in ("train", "valid", "test"):
        sm = dm["splits"][split]
        data = (corpus / sm["file"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != sm["sha256"]:
            fail(f"{sm['file']}: sha256 differs from manifest")
        if len(data) != sm["bytes"]:
            fail(f"{sm['file']}: {len(data)} bytes, manifest says {sm['bytes']}")
        text = data.decode("utf-8")
        texts[(domain, split)] = text
        if not text.endswith("\n") or text.endswith("\n\n\n\n"):
            fail(f"{sm['file']}: must end with exactly one document and a newline")
        if re.search(r"[ \t]+\n", text):
            fail(f"{sm['file']}: trailing whitespace")
        if "\n\n\n\n" in text:
            fail(f"{sm['file']}: more than two blank lines in a row")
        if split == "train" and len(data) > cap:
            fail(f"{sm['file']}: {len(data)} bytes over the cap {cap:.0f}")
        if split != "train" and len(data) < 150_000:
            fail(f"{sm['file']}: only {len(data)} bytes")

ref = "".join(texts.get(("reference", s), "") for s in ("train", "valid", "test"))
# Sphinx page furniture and man-page markup must be gone; the docs may still quote a little
# HTML or roff on purpose (html.parser's docs, man-pages(7)), hence the small allowances.
for pat, what, allowed in ((r'class="(headerlink|reference internal|pre|highlight)|<div class="|<span class="', "HTML markup", 0),
                           (r"(?m)^\.(TH|SH|SS|PP|TP|IP|BR|IR|RS|RE|nf|fi|sp)( |$)", "roff requests", 0),
                           (r"\\f[BIRP]", "roff font escapes", 5)):
    n = len(re.findall(pat, ref))
    if n > allowed:
        fail(f"reference: {n} leftovers of {what}")

for split in ("train", "valid", "test"):
    t = texts.get(("math", split), "")
    if "<<" in t or "####" in t:
        fail(f"math/{split}: GSM8K annotations left in")
    docs = [d for d in t.strip("\n").split("\n\n") if d]
    bad = [d for d in docs if not (d.startswith("Question: ") and "\nAnswer: " in d and
                                   re.search(r"\nThe answer is .+\.$", d))]
    if bad:
        fail(f"math/{split}: {len(bad)} items not in Question/Answer form, e.g. {bad[0][:120]!r}")

# Evaluation items must not occur anywhere (GSM8K questions would show as "Question: ..." lines,
# WikiText-2 articles by their " = Title = " lines).
lines = set()
for t in texts.values():
    lines.update(t.split("\n"))
gsm_test = shared / "data/eval/gsm8k/test.jsonl"
if gsm_test.exists():
    qs = [json.loads(l)["question"].strip() for l in gsm_test.read_text(encoding="utf-8").splitlines() if l.strip()]
    leaked = [q for q in qs if "Question: " + q.split("\n")[0] in lines]
    if leaked:
        fail(f"{len(leaked)} GSM8K test questions occur in the corpus, e.g. {leaked[0][:80]!r}")
wt_test = shared / "data/eval/wikitext2/test.txt"
if wt_test.exists():
    titles = re.findall(r"(?m)^ = [^=].* = $", wt_test.read_text(encoding="utf-8"))
    leaked = [t for t in titles if "<unk>" not in t and t in lines]
    if leaked:
        fail(f"{len(leaked)} WikiText-2 test articles occur in the corpus, e.g. {leaked[0]!r}")

# valid/test must not repeat train: count long (300+ chars) paragraphs of valid/test that also
# occur in train. Code shares some verbatim blocks between files (Math::BigInt/BigFloat...),
# so allow up to 2% of them.
for domain in ("code", "math", "prose", "reference"):
    train = {p for p in texts.get((domain, "train"), "").split("\n\n") if len(p) >= 300}
    held = [p for s in ("valid", "test") for p in texts.get((domain, s), "").split("\n\n") if len(p) >= 300]
    rep = [p for p in held if p in train]
    if held and len(rep) > 0.02 * len(held):
        fail(f"{domain}: {len(rep)} of {len(held)} long valid/test paragraphs also occur in train, "
             f"e.g. {rep[0][:100]!r}")

if fails:
    sys.exit(1)
print(f"ok: corpus at {corpus} passes ({sum(len(t) for t in texts.values()):,} chars in 12 files)")
EOF
