#!/usr/bin/env python3
"""Builds the tokenizer fixtures and golden token ids in tests/golden/data/tokenizer/.

Runs in the reference environment (Hugging Face tokenizers, sentencepiece, llama.cpp tools),
which needs both the repository and ../shared visible, so mount their parent:

    cd /work && ./shared/reference/run.sh python3 main/scripts/make_tokenizer_goldens.py

(run.sh bind-mounts the current directory at the chroot's /work for everyone using the
chroot; if another session holds that mount with a different directory, wait and retry.)

Fixtures made here (each < 1 MB, byte-identical on reruns with the same library versions):
  llama3/  byte-level BPE with Llama-3's Split regex, ignore_merges (plus two whole words
           no merge reaches, so ignore_merges shows), BOS template
  qwen2/   Qwen2's Split regex (single digits) and NFC normalizer, ChatML special tokens
  smollm/  SmolLM's Digits(individual) + ByteLevel(regex) pre-tokenizer
           (qwen2 and smollm learn their merges under the plain GPT-2 split so their vocabularies
           hold multi-digit and " 1" pieces that their own splits must keep apart)
  gpt2_prefix/  GPT-2 ByteLevel with add_prefix_space and a non-special added token
  added_strip/  GPT-2 ByteLevel with added tokens that strip whitespace: <mask> (special,
           lstrip), <|end|> (special, rstrip), <note> (not special, lstrip and rstrip)
  added_single_word/  GPT-2 ByteLevel with single_word added tokens: "ing" and "λ" (not
           special), <x> (special, also lstrip), and a plain "ng" inside "ing"'s matches
(`--only NAME` remakes one fixture and its golden, leaving the others as they are)
  spm/     SentencePiece BPE .model (identity normalizer, byte fallback, a user-defined piece)
and goldens for those plus ../shared/models/tiny-llama-a/tokenizer.json (HF tokenizers) and
../shared/models/stories260K/tok512.bin (llama.cpp's llama-server /tokenize on
stories260K.gguf, which was made from it), and a dump of that GGUF's vocabulary.

Golden case fields: "ids" = encode(text, add_special=False, parse_special=False);
"ids_special" = encode(text, add_special=True, parse_special=True); "decoded" =
decode(ids) and "decoded_special" = decode(ids_special) with special tokens dropped.
A field is null where the reference cannot produce it."""
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MF_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "tests" / "golden" / "data" / "tokenizer"

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Tricky strings every tokenizer is checked on. Only characters from Unicode <= 14 (the
# version scripts/gen_unicode_tables.py used).
TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you're right: we've seen it, they'll know, he'd agree, it's fine, don't.",
    "IT'S LOUD. I'M SURE YOU'RE RIGHT, WE'VE SEEN IT, SHE'LL KNOW, HE'D AGREE. 'S 'T 'Re 'vE 'Ll",
    "x's y'S z\u2019s ''quoted'' 'single' rock'n'roll",
    "Numbers: 1234567 and 3.14159, 42nd, 1,000,000, 0x1F, 007 and 12345678901.",
    "1 12 123 1234 12345 \u0661\u0662\u0663 \u00b2\u00b3 \u00bd \u2163",
    "  leading spaces",
    "trailing spaces   ",
    "multiple     spaces   inside",
    "tabs\tand\t\ttabs \t mixed",
    "line\nbreaks\n\nand\r\nwindows\r\n\r\nlines\n",
    "\n\n\n",
    "   \n  \n ",
    " ",
    "a",
    "",
    "ends with newline\n",
    " \u00a0nbsp\u2009thin\u3000ideographic\u2028sep\u000bvt\u000cff\u0085nel",
    "accents: caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m fa\u00e7ade \u00fcber Stra\u00dfe",
    "decomposed: cafe\u0301 n\u0303o A\u030a e\u0301\u0327 \u1100\u1161\u11a8",
    "CJK: \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\u4e2d\u6587\u5b57\u7b26\u3002\ud55c\uad6d\uc5b4 \u6f22\u5b57",
    "emoji: \U0001F600\U0001F44D\U0001F3FD family \U0001F468\u200D\U0001F469\u200D\U0001F467 flag \U0001F1EB\U0001F1F7 \u2764\ufe0f",
    "mixed: \u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440, \u03b3\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5, "
    "\u0645\u0631\u062d\u0628\u0627, \u05e9\u05dc\u05d5\u05dd, \u0928\u092e\u0938\u094d\u0924\u0947 abc123\u65e5\u672c",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))  # -> 3\n",
    "<html><body class=\"x\">Hi &amp; bye</body></html>",
    "!!!???... ---- ==== ((( ))) $100 50% #tag @user ~/path/to_file.txt",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    " " * 40 + "x",
    "(hello) [world] {x} \"quoted\" a-b a_b a.b a/b",
    "<s> </s> <unk> <0x41> \u2581space \u0120G",
]


def read_corpus():
    prose = (SHARED / "data/eval/prose/frankenstein.txt").read_text(encoding="utf-8")
    gsm = []
    with open(SHARED / "data/eval/gsm8k/train.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 2000:
                break
            row = json.loads(line)
            gsm.append(row["question"] + "\n" + row["answer"])
    # A little non-English so merges of multi-byte characters exist.
    extra = ["caf\u00e9 na\u00efve \u00fcber Stra\u00dfe \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4 "
             "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 \U0001F600"] * 50
    return prose.split("\n\n") + gsm + extra, prose, gsm


def bulk_texts(prose, gsm):
    return [prose[10000:13000], "\n\n".join(gsm[:3])]


# ---- fixtures ---------------------------------------------------------------------------

def train_bpe(lines, pre_tokenizer, vocab_size, ignore_merges=False, normalizer=None, train_gpt2=False):
    """train_gpt2: learn merges with the plain GPT-2 split, then install pre_tokenizer, so the
    vocabulary holds pieces (multi-digit numbers, " 1") the target split treats differently."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False) if train_gpt2 else pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    tok.pre_tokenizer = pre_tokenizer
    return tok


def add_unreachable_words(tok, words):
    """Adds whole words to model.vocab with no merge reaching them: only ignore_merges
    produces them. Done before any added token so ids stay contiguous."""
    from tokenizers import Tokenizer
    j = json.loads(tok.to_str())
    assert not j["added_tokens"]
    vocab = j["model"]["vocab"]
    for word in words:
        vocab[word] = len(vocab)
    return Tokenizer.from_str(json.dumps(j))


def write_fixture(name, tok, config):
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    size = (d / "tokenizer.json").stat().st_size
    assert size < 1_000_000, f"{name}/tokenizer.json is {size} bytes"
    return f"tests/golden/data/tokenizer/{name}/tokenizer.json"


def make_llama3(lines):
    from tokenizers import Regex, pre_tokenizers, processors
    tok = train_bpe(lines, pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)]),
        vocab_size=3000, ignore_merges=True)
    tok = add_unreachable_words(tok, ["Supercalifragilisticexpialidocious", "\u0120antidisestablishmentarianism"])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok.add_special_tokens(specials)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    cfg = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
           "chat_template": "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                            "{{ m['content'] }}<|eot_id|>{% endfor %}"}
    return tok, cfg, specials


def make_qwen2(lines):
    from tokenizers import Regex, normalizers, pre_tokenizers, processors
    tok = train_bpe(lines, pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)]),
        vocab_size=3000, normalizer=normalizers.NFC(), train_gpt2=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens(specials)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    cfg = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
           "chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"}
    return tok, cfg, specials


def make_smollm(lines):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # see train_bpe's train_gpt2
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, show_progress=False, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    cfg = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": False}
    return tok, cfg, specials


def make_gpt2_prefix(lines):
    from tokenizers import AddedToken, pre_tokenizers
    tok = train_bpe(lines, pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True), vocab_size=1500)
    specials = ["<|endoftext|>"]
    tok.add_special_tokens(specials)
    tok.add_tokens([AddedToken("<custom>", special=False, normalized=False)])
    cfg = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
    return tok, cfg, specials + ["<custom>"]


def make_added_strip(lines):
    from tokenizers import AddedToken, pre_tokenizers
    tok = train_bpe(lines, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), vocab_size=1200)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False),
                            AddedToken("<|end|>", rstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("<note>", lstrip=True, rstrip=True, special=False, normalized=False)])
    cfg = {"eos_token": "<|end|>"}
    return tok, cfg, ["<mask>", "<|end|>", "<note>"]


def make_added_single_word(lines):
    from tokenizers import AddedToken, pre_tokenizers
    tok = train_bpe(lines, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), vocab_size=1200)
    tok.add_special_tokens([AddedToken("<x>", single_word=True, lstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("ing", single_word=True, special=False, normalized=False),
                    AddedToken("\u03bb", single_word=True, special=False, normalized=False),
                    AddedToken("ng", special=False, normalized=False)])
    return tok, {}, ["<x>", "ing", "\u03bb", "ng"]


SINGLE_WORD_TEXTS = [
    "ing sing singing a ing b ing_ _ing ing1 1ing ing. .ing ing- x ingsing ing",
    "singng ng ing ng",
    "a<x>b a <x> b <x><x> x  <x>y",
    "\u03bb \u03bb\u03bb a\u03bb \u03bba \u00e9\u03bb \u03bb\u00e9 \u00e9ing ing\u00e9 \u4e2ding ing\u4e2d \u0661ing (\u03bb)",
    "ing\n\ning\ting ing\u3000ing",
]

STRIP_TEXTS = [
    "I saw a <mask> here and a<mask>there.",
    "a  \t<mask>\n\nb <mask>",
    "<|end|>\n\nnext <|end|>   tail<|end|>",
    "x <note>  y<note>z <note>",
    "  <mask>   <note>   <|end|>  ",
    "<mask><mask> <|end|> <|end|><note> <note>",
    "caf\u00e9\u3000<note>\u00a0z \u2003<mask>\u2003w",
]


def make_spm(lines):
    import sentencepiece as spm
    d = OUT / "spm"
    d.mkdir(parents=True, exist_ok=True)
    # Relative names inside a scratch directory: the trainer records them in the model file,
    # which then comes out byte-identical on every run.
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            with open("corpus.txt", "w", encoding="utf-8") as f:
                for line in lines:
                    for part in line.split("\n"):
                        if part.strip():
                            f.write(part + "\n")
            spm.SentencePieceTrainer.train(
                input="corpus.txt", model_prefix="tokenizer", vocab_size=1000, model_type="bpe",
                byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
                split_digits=True, character_coverage=0.9995, user_defined_symbols=["<custom>"],
                unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2,
                allow_whitespace_only_pieces=True)
            shutil.copyfile("tokenizer.model", d / "tokenizer.model")
        finally:
            os.chdir(cwd)
    (d / "tokenizer_config.json").write_text(json.dumps({"add_bos_token": True, "add_eos_token": False}, indent=2) + "\n")
    return "tests/golden/data/tokenizer/spm/tokenizer.model"


# ---- references ------------------------------------------------------------------------

def hf_cases(path, texts):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(path))
    cases = []
    for text in texts:
        tok.encode_special_tokens = True   # special token strings are plain text
        ids = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        ids_special = tok.encode(text, add_special_tokens=True).ids
        cases.append({"text": text, "ids": ids, "ids_special": ids_special,
                      "decoded": tok.decode(ids, skip_special_tokens=True),
                      "decoded_special": tok.decode(ids_special, skip_special_tokens=True)})
    return cases


def spm_cases(path, texts):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(path))
    controls = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.is_control(i)]
    cases = []
    for text in texts:
        ids = sp.encode(text)
        # sentencepiece never parses control pieces in text: no reference when the text has one.
        has_control = any(c in text for c in controls)
        ids_special = None if has_control else [sp.bos_id()] + ids
        cases.append({"text": text, "ids": ids, "ids_special": ids_special, "decoded": sp.decode(ids),
                      "decoded_special": None if has_control else sp.decode(ids_special)})
    return cases


class LlamaServer:
    """llama.cpp's llama-server, for its /tokenize endpoint (llama_tokenize with explicit
    add_special and parse_special)."""

    def __init__(self, gguf, port=18089):
        import time
        import urllib.request
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(["llama-server", "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
                                      "-c", "4096", "-t", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("llama-server did not start")

    def tokenize(self, text, add_special, parse_special):
        import urllib.request
        body = json.dumps({"content": text, "add_special": add_special, "parse_special": parse_special}).encode()
        req = urllib.request.Request(self.url + "/tokenize", data=body, headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=60).read())["tokens"]

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def llama2c_cases(gguf, texts):
    server = LlamaServer(gguf)
    try:
        cases = []
        for text in texts:
            ids = server.tokenize(text, False, False)
            ids_special = server.tokenize(text, True, True)
            # decode(encode(text)) == text, the dummy-prefix space dropped (as sentencepiece and
            # llama_detokenize with remove_special do), unless the text spells "\u2581" itself.
            plain = "\u2581" not in text
            has_special = any(s in text for s in ("<s>", "</s>", "<unk>"))
            cases.append({"text": text, "ids": ids, "ids_special": ids_special,
                          "decoded": text if plain else None,
                          "decoded_special": text if plain and not has_special else None})
        return cases
    finally:
        server.close()


def versions():
    import sentencepiece
    import tokenizers
    import transformers
    v = {"python": platform.python_version(), "tokenizers": tokenizers.__version__,
         "transformers": transformers.__version__, "sentencepiece": sentencepiece.__version__,
         "unicodedata": unicodedata.unidata_version}
    try:
        r = subprocess.run(["llama-server", "--version"], capture_output=True, text=True)
        v["llama.cpp"] = (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        v["llama.cpp"] = None
    return v


def write_golden(name, kind, base, file, cases, vers, notes=""):
    head = {"version": vers, "generator": "scripts/make_tokenizer_goldens.py", "kind": kind,
            "base": base, "file": file, "notes": notes}
    write_json_lines(OUT / f"golden_{name}.json", head, "cases", cases)


def write_json_lines(path, head, key, rows):
    """JSON with one row per line: small diffs, still one json.load away."""
    body = ",\n".join(json.dumps(r, ensure_ascii=True) for r in rows)
    text = json.dumps(head, indent=1)[:-2] + f',\n "{key}": [\n{body}\n]}}\n'
    json.loads(text)
    path.write_text(text)
    print(f"{path.relative_to(ROOT)}: {len(rows)} {key}")


def dump_gguf_vocab(gguf, vers):
    """tokens/scores/types of the GGUF, to check load_llama2c_tokenizer_spec against."""
    import gguf as gguf_py
    r = gguf_py.GGUFReader(str(gguf))
    f = r.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode("utf-8") for i in f["tokenizer.ggml.tokens"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    scalar = lambda k: int(f[k].parts[f[k].data[0]][0]) if k in f else None
    head = {"version": vers, "generator": "scripts/make_tokenizer_goldens.py (gguf-py GGUFReader)",
            "file": "models/stories260K/stories260K.gguf", "model": bytes(f["tokenizer.ggml.model"].parts[f["tokenizer.ggml.model"].data[0]]).decode(),
            "bos_id": scalar("tokenizer.ggml.bos_token_id"), "eos_id": scalar("tokenizer.ggml.eos_token_id"),
            "unk_id": scalar("tokenizer.ggml.unknown_token_id")}
    rows = [[t, s, ty] for t, s, ty in zip(tokens, scores, types)]
    write_json_lines(OUT / "gguf_vocab_stories260k.json", head, "vocab", rows)


def main():
    if not (SHARED / "models").is_dir():
        sys.exit(f"{SHARED} not found: run from /work as shown in this script's docstring, or set MF_SHARED")
    OUT.mkdir(parents=True, exist_ok=True)
    vers = versions()
    lines, prose, gsm = read_corpus()
    texts = TEXTS + bulk_texts(prose, gsm)

    def with_specials(specials):
        return texts + [f"Hi{specials[0]}there {specials[0]} end{specials[-1]}",
                        f"{specials[0]}{specials[-1]}x {specials[0][:-1]} <{specials[0]}>"]

    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    if only == "added_single_word" or only is None:
        tok, cfg, specials = make_added_single_word(lines)
        rel = write_fixture("added_single_word", tok, cfg)
        write_golden("added_single_word", "hf", "repo", rel,
                     hf_cases(ROOT / rel, with_specials(specials) + SINGLE_WORD_TEXTS), vers)
    if only is not None:
        return
    write_golden("tiny_llama_a", "hf", "shared", "models/tiny-llama-a/tokenizer.json",
                 hf_cases(SHARED / "models/tiny-llama-a/tokenizer.json", with_specials(["<|endoftext|>"])), vers)
    for name, make in (("llama3", make_llama3), ("qwen2", make_qwen2), ("smollm", make_smollm),
                       ("gpt2_prefix", make_gpt2_prefix)):
        tok, cfg, specials = make(lines)
        rel = write_fixture(name, tok, cfg)
        write_golden(name, "hf", "repo", rel, hf_cases(ROOT / rel, with_specials(specials)), vers)
    tok, cfg, specials = make_added_strip(lines)
    rel = write_fixture("added_strip", tok, cfg)
    write_golden("added_strip", "hf", "repo", rel, hf_cases(ROOT / rel, with_specials(specials) + STRIP_TEXTS), vers)
    rel = make_spm(lines)
    write_golden("spm", "sentencepiece", "repo", rel,
                 spm_cases(ROOT / rel, with_specials(["<custom>", "</s>"])), vers,
                 "ids_special = [bos] + sentencepiece ids (the spec's add_bos); null where the text holds a control piece")
    gguf = SHARED / "models/stories260K/stories260K.gguf"
    write_golden("stories260k", "llama2c", "shared", "models/stories260K/tok512.bin",
                 llama2c_cases(gguf, with_specials(["<s>", "</s>"])), vers,
                 "reference: llama.cpp (llama-server /tokenize) on stories260K.gguf, which "
                 "convert-llama2c-to-ggml made from tok512.bin; decoded = text (round trip)")
    dump_gguf_vocab(gguf, vers)


if __name__ == "__main__":
    main()
