#!/usr/bin/env python3
"""Builds moeforge's multi-domain text corpus (code, math, prose, reference).

    python3 scripts/build_corpus.py --out data/corpus [--max-mb-per-domain 25] [--seed 1234]

Every source comes from Debian 12's apt archive or from ../shared/data/eval (GSM8K *train*,
Frankenstein, WikiText-2 *valid*), so the corpus can be rebuilt on any Debian 12 machine with
no internet access but the apt mirror. Python 3.11 standard library only. See data/CORPUS.md.

Pipeline: make sure the Debian packages are there (apt-get install when root; packages whose
dependencies would drag in a whole stack -- R, a dict server -- are only fetched with
`apt-get download` and unpacked into <out>/.cache), extract documents per source (a file, a
GSM8K item, a Bible chapter, a man page, ...), normalise them (UTF-8 only, \\n newlines, no
trailing whitespace, no more than two blank lines in a row, no control characters), cut
documents longer than --max-doc-chars at blank lines, drop short ones, drop exact and
near-exact duplicates (first one wins, in source order), drop any document sharing a
--decontam-ngram word n-gram with an evaluation set (GSM8K test, MMLU, ARC-Easy, PIQA,
WikiText-2 test), shuffle each domain with a seeded RNG and split it by document into
test / valid / train, capping train at --max-mb-per-domain.

Output: <out>/<domain>/{train,valid,test}.txt (documents joined by "\\n\\n", final "\\n"),
<out>/manifest.json (counts, sha256 per file, sources with package versions and licences)
and <out>/manifest.md (the same as Markdown tables, for data/CORPUS.md).
Byte-identical on reruns with the same package versions, seed and options.
"""
import argparse
import concurrent.futures
import gzip
import hashlib
import html
import html.parser
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MF_SHARED", ROOT.parent / "shared"))
EVAL = SHARED / "data" / "eval"

DOMAINS = ("code", "math", "prose", "reference")
SPLITS = ("train", "valid", "test")
T0 = time.monotonic()


class CorpusError(Exception):
    """A source is missing, unreadable or cannot be installed."""


def log(msg):
    print(f"[build_corpus {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------
# Debian packages
# ----------------------------------------------------------------------------------------

class Pkg:
    """A Debian package whose files are readable under `root` (/ when installed)."""

    def __init__(self, name, version, root, files, how):
        self.name, self.version, self.root, self.files, self.how = name, version, root, files, how

    def path(self, p):
        """Real path of the package path p (e.g. /usr/share/man/man1/ls.1.gz)."""
        return Path(self.root + p) if self.root != "/" else Path(p)

    def regular_files(self, pattern):
        """Package paths matching the regex `pattern` that are regular files (not links), sorted."""
        rx = re.compile(pattern)
        out = []
        for p in self.files:
            if rx.search(p):
                real = self.path(p)
                if real.is_file() and not real.is_symlink():
                    out.append(p)
        return sorted(out)


def _run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _installed_version(name):
    r = _run(["dpkg-query", "-W", "-f=${Status}\t${Version}", name])
    if r.returncode != 0:
        return None
    status, _, version = r.stdout.partition("\t")
    return version if status.endswith(" installed") else None


def _installed_pkg(name):
    version = _installed_version(name)
    if version is None:
        return None
    r = _run(["dpkg-query", "-L", name])
    files = [l for l in r.stdout.splitlines() if l.startswith("/") and l != "/."]
    regular = [p for p in files if os.path.isfile(p)]
    # dpkg path-exclude (slim Docker images drop /usr/share/{doc,man}) leaves listed files out.
    listed_missing = [p for p in files if not os.path.lexists(p)]
    if listed_missing and len(listed_missing) * 10 > len(files):
        log(f"{name}: {len(listed_missing)} of {len(files)} listed files missing (dpkg path-exclude?); "
            "using an unpacked copy instead")
        return None
    if not regular:
        return None
    return Pkg(name, version, "/", files, "installed")


class PackageManager:
    def __init__(self, cache_dir, allow_apt):
        self.cache_dir = Path(cache_dir)
        self.allow_apt = allow_apt
        self.is_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.updated = False
        self.pkgs = {}

    def _apt(self, args, what):
        log(f"running: {' '.join(args)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        if r.returncode != 0:
            tail = "\n".join(r.stdout.splitlines()[-8:])
            log(f"{what} failed (exit {r.returncode}):\n{tail}")
        return r.returncode == 0

    def _apt_update(self):
        if not self.updated and self.is_root:
            self.updated = True
            self._apt(["apt-get", "update"], "apt-get update")

    def install(self, names):
        """Makes each package available: installed (apt-get install when root) or unpacked."""
        names = [n for n in names if n not in self.pkgs]
        missing = []
        for n in names:
            p = _installed_pkg(n)
            if p:
                self.pkgs[n] = p
            else:
                missing.append(n)
        if missing and self.allow_apt and self.is_root:
            cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + missing
            if not self._apt(cmd, "apt-get install"):
                self._apt_update()
                self._apt(cmd, "apt-get install (after update)")
            still = []
            for n in missing:
                p = _installed_pkg(n)
                if p:
                    self.pkgs[n] = p
                else:
                    still.append(n)
            missing = still
        for n in missing:  # not root, or installed without its files: unpack the .deb instead
            self.unpack(n)

    def unpack(self, name):
        """apt-get download + dpkg-deb -x into the cache (no root, no dependencies)."""
        if name in self.pkgs:
            return self.pkgs[name]
        debs = self.cache_dir / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        ok = False
        if self.allow_apt:
            args = ["apt-get", "download"]
            if self.is_root:
                args += ["-o", "APT::Sandbox::User=root"]
            r = subprocess.run(args + [name], cwd=debs, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
            ok = r.returncode == 0
            if not ok and self.is_root:
                self._apt_update()
                r = subprocess.run(args + [name], cwd=debs, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
                ok = r.returncode == 0
            if not ok:
                log(f"apt-get download {name} failed: {r.stdout.strip().splitlines()[-1:]}")
        cands = sorted(debs.glob(f"{name}_*.deb"))
        if not cands:
            hint = ("run `apt-get update` (as root) so apt can fetch it" if not self.is_root
                    else "check the apt sources (Debian 12 main)")
            raise CorpusError(f"Debian package {name!r} is not installed and could not be installed or "
                              f"downloaded; as root: apt-get install -y --no-install-recommends {name} ({hint})")
        if len(cands) > 1:  # keep the newest version apt handed us
            vers = {c: _run(["dpkg-deb", "-f", str(c), "Version"]).stdout.strip() for c in cands}
            best = cands[0]
            for c in cands[1:]:
                if subprocess.run(["dpkg", "--compare-versions", vers[c], "gt", vers[best]]).returncode == 0:
                    best = c
            cands = [best]
        deb = cands[0]
        version = _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
        dest = self.cache_dir / "root" / f"{name}_{version.replace(':', '%3a')}"
        if not (dest / ".unpacked").exists():
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            r = _run(["dpkg-deb", "-x", str(deb), str(dest)])
            if r.returncode != 0:
                raise CorpusError(f"dpkg-deb -x {deb} failed: {r.stderr.strip()}")
            (dest / ".unpacked").write_text(version + "\n")
        files = []
        for dirpath, dirnames, filenames in os.walk(dest):
            dirnames.sort()
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                rel = "/" + os.path.relpath(full, dest)
                if rel != "/.unpacked":
                    files.append(rel)
        log(f"{name} {version}: unpacked {deb.name} ({len(files)} files)")
        p = Pkg(name, version, str(dest), files, "unpacked from .deb (apt-get download)")
        self.pkgs[name] = p
        return p


# ----------------------------------------------------------------------------------------
# Text helpers
# ----------------------------------------------------------------------------------------

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufeff]")
_BLANKS = re.compile(r"\n{4,}")  # 3+ blank lines


def normalise(text):
    """\\n newlines, no trailing whitespace, at most 2 blank lines in a row, no control chars."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CTRL.sub("", text)  # keeps \t and \n
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _BLANKS.sub("\n\n\n", text)
    return text.strip("\n")


def decode_utf8(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_maybe_gz(path):
    data = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        data = gzip.decompress(data)
    return data


def chunk_text(text, max_chars):
    """Cuts text into pieces of at most max_chars: at the last blank line that keeps a piece at
    least a quarter full, else at the last newline, else (one enormous line) anywhere."""
    pieces = []
    while len(text) > max_chars:
        window = text[:max_chars + 1]
        cut = window.rfind("\n\n")
        if cut < max_chars // 4:
            cut = window.rfind("\n")
        if cut <= 0:
            cut = max_chars
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    pieces.append(text)
    return [p.strip("\n") for p in pieces if p.strip()]


def unwrap_paragraphs(lines):
    """Joins hard-wrapped lines into one line per paragraph (blank lines separate paragraphs)."""
    paras, cur = [], []
    for line in lines:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return "\n\n".join(paras)


class SphinxText(html.parser.HTMLParser):
    """Plain text of a Sphinx page's main body: paragraphs, headings, lists, code blocks."""

    BLOCK = {"p", "div", "section", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "table",
             "tr", "blockquote", "ul", "ol", "dl", "br", "hr", "figure", "figcaption", "caption",
             "thead", "tbody", "article", "aside", "nav", "footer", "header"}
    SKIP = {"script", "style", "head", "title", "noscript", "svg", "button"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self.buf = [], []
        self.pre = 0
        self.skip = 0
        self.a_stack = []
        self.span_stack = []
        self.prefix = ""

    def flush(self):
        s = "".join(self.buf)
        self.buf = []
        if self.pre:
            s = s.strip("\n")
            if s.strip():
                self.blocks.append(s)
        else:
            s = " ".join(s.split())
            if s:
                self.blocks.append(self.prefix + s)
        self.prefix = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag in self.SKIP:
            self.skip += 1
            return
        if tag == "a":
            hide = "headerlink" in cls
            self.a_stack.append(hide)
            if hide:
                self.skip += 1
            return
        if tag == "span":
            hide = "linenos" in cls
            self.span_stack.append(hide)
            if hide:
                self.skip += 1
            return
        if tag == "pre":
            self.flush()
            self.pre += 1
            return
        if tag in ("td", "th"):
            self.buf.append(" ")
            return
        if tag == "img":
            alt = a.get("alt")
            if alt and not self.skip:
                self.buf.append(f" {alt} ")
            return
        if tag in self.BLOCK and not self.pre:
            self.flush()
            if tag == "li":
                self.prefix = "* "

    def handle_startendtag(self, tag, attrs):
        if tag == "br" and not self.pre:
            self.flush()
        elif tag == "img":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if tag == "a":
            if self.a_stack and self.a_stack.pop():
                self.skip = max(0, self.skip - 1)
            return
        if tag == "span":
            if self.span_stack and self.span_stack.pop():
                self.skip = max(0, self.skip - 1)
            return
        if tag == "pre":
            self.flush()
            self.pre = max(0, self.pre - 1)
            return
        if tag in self.BLOCK and not self.pre:
            self.flush()

    def handle_data(self, data):
        if not self.skip:
            self.buf.append(data)

    def text(self):
        self.flush()
        return "\n\n".join(self.blocks)


def sphinx_html_to_text(raw):
    start = raw.find('role="main"')
    if start < 0:
        return None
    start = raw.find(">", start) + 1
    end = len(raw)
    for marker in ('<div class="sphinxsidebar"', '<div class="footer"', "</body>"):
        i = raw.find(marker, start)
        if i >= 0:
            end = min(end, i)
    p = SphinxText()
    p.feed(raw[start:end])
    p.close()
    text = p.text().replace("\u00b6", "")
    return text


def _html_file_to_text(path):
    data = Path(path).read_bytes()
    raw = decode_utf8(data)
    if raw is None:
        return None
    return sphinx_html_to_text(raw)


_GROFF = ["groff", "-t", "-man", "-Tutf8", "-P-cbou", "-rHY=0", "-rLL=80n"]
_GROFF_ENV = dict(os.environ, GROFF_NO_SGR="1", LC_ALL="C.UTF-8")
_MAN_MARK = re.compile(r"(?m)^\s*@@MOEFORGEPAGE(\d+)@@\s*$")


def _man_clean(text):
    """Drops the page header line and footer line of a rendered page; no 3+ newline runs."""
    lines = [l.rstrip() for l in text.split("\n")]
    nonblank = [i for i, l in enumerate(lines) if l.strip()]
    if len(nonblank) < 3:
        return None
    first, last = nonblank[0], nonblank[-1]
    # "ls(1)   User Commands   ls(1)" header; "Linux man-pages 6.03   2023-02-05   ls(1)" footer
    start = first + 1 if re.search(r"\S\(\w+\)$", lines[first]) else first
    end = last if re.search(r"\S\(\w+\)$", lines[last]) and last > start else last + 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines[start:end]))


def _render_man_batch(paths):
    """Renders man pages (gz) to plain text with one groff run (much cheaper than one per page).

    ragged right (.ad l), no hyphenation, 80 columns. A marker line before each page splits
    the output; if the markers do not all come back, the pages are rendered one by one."""
    srcs = [read_maybe_gz(p) for p in paths]
    out = [None] * len(paths)
    batch = b""
    for i, src in enumerate(srcs):
        if src.lstrip().startswith(b".so "):  # alias of another page
            out[i] = ""
            continue
        batch += (b"\n.ad l\n.nf\n.in 0\n.ti 0\n\\&@@MOEFORGEPAGE%d@@\n.fi\n" % i) + src + b"\n"
    todo = [i for i in range(len(paths)) if out[i] is None]
    if not todo:
        return out
    r = subprocess.run(_GROFF, input=batch, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_GROFF_ENV)
    text = decode_utf8(r.stdout) if r.returncode == 0 else None
    parts = _MAN_MARK.split(text) if text is not None else []
    got = {int(parts[j]): parts[j + 1] for j in range(1, len(parts) - 1, 2)}
    if text is not None and sorted(got) == todo:
        for i in todo:
            out[i] = _man_clean(got[i])
        return out
    for i in todo:  # fall back: one groff run per page
        r = subprocess.run(_GROFF, input=b".ad l\n" + srcs[i], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           env=_GROFF_ENV)
        t = decode_utf8(r.stdout) if r.returncode == 0 else None
        out[i] = _man_clean(t) if t is not None else None
    return out


# ----------------------------------------------------------------------------------------
# R lazy-load databases (r-cran-janeaustenr ships its novels as data/Rdata.rdb)
# ----------------------------------------------------------------------------------------

class RVec(list):
    def __init__(self, items):
        super().__init__(items)
        self.attrs = {}


class RUnserializer:
    """Just enough of R's XDR serialization (version 2/3) for character vectors and lists."""

    def __init__(self, data):
        self.d, self.p, self.refs = data, 0, []

    def i32(self):
        v = struct.unpack_from(">i", self.d, self.p)[0]
        self.p += 4
        return v

    def read(self):
        if self.d[:2] != b"X\n":
            raise ValueError("not an XDR R serialization")
        self.p = 2
        version = self.i32()
        self.i32()
        self.i32()
        if version == 3:
            n = self.i32()
            self.p += n
        return self.item()

    def item(self):
        flags = self.i32()
        t = flags & 0xFF
        has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        if t in (254, 242):  # NILVALUE_SXP, EMPTYENV_SXP
            return None
        if t == 9:  # CHARSXP
            n = self.i32()
            if n == -1:
                return None
            s = self.d[self.p:self.p + n]
            self.p += n
            levels = flags >> 12
            return s.decode("latin-1") if levels & 4 else s.decode("utf-8", "replace")
        if t == 1:  # SYMSXP
            s = ("sym", self.item())
            self.refs.append(s)
            return s
        if t == 255:  # REFSXP
            return self.refs[(flags >> 8) - 1]
        if t == 2:  # LISTSXP (pairlist)
            out = []
            while True:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                out.append((tag, self.item()))
                flags = self.i32()
                t = flags & 0xFF
                has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
                if t == 254:
                    return ("pairlist", out)
                if t != 2:
                    raise ValueError(f"unsupported pairlist tail type {t}")
        if t in (16, 19, 20):  # STRSXP, VECSXP, EXPRSXP
            n = self.i32()
            v = [self.item() for _ in range(n)]
        elif t in (10, 13):  # LGLSXP, INTSXP
            n = self.i32()
            v = list(struct.unpack_from(f">{n}i", self.d, self.p))
            self.p += 4 * n
        elif t == 14:  # REALSXP
            n = self.i32()
            v = list(struct.unpack_from(f">{n}d", self.d, self.p))
            self.p += 8 * n
        else:
            raise ValueError(f"unsupported R SEXP type {t}")
        v = RVec(v)
        if has_attr:
            for tag, val in self.item()[1]:
                v.attrs[tag[1] if tag else None] = val
        return v


def load_r_lazydb(prefix):
    """{name: object} from an R lazy-load database (prefix.rdx index + prefix.rdb blobs)."""
    idx = RUnserializer(gzip.decompress(Path(str(prefix) + ".rdx").read_bytes())).read()
    variables = idx[idx.attrs["names"].index("variables")]
    blob = Path(str(prefix) + ".rdb").read_bytes()
    out = {}
    for name, (off, ln) in zip(variables.attrs["names"], variables):
        chunk = blob[int(off):int(off) + int(ln)]
        out[name] = RUnserializer(zlib.decompress(chunk[4:])).read()
    return out


# ----------------------------------------------------------------------------------------
# Sources. Each yields (doc_id, text) in a fixed order; raw sizes go into stats["input_bytes"].
# ----------------------------------------------------------------------------------------

def files_text(pkg, paths, stats, gz=False):
    for p in paths:
        data = pkg.path(p).read_bytes()
        if gz or p.endswith(".gz"):
            data = gzip.decompress(data)
        stats["input_files"] += 1
        stats["input_bytes"] += len(data)
        text = decode_utf8(data)
        if text is None:
            stats["dropped_undecodable"] += 1
            continue
        yield p, text


def src_python_stdlib(ctx, stats):
    skip = re.compile(r"/(pydoc_data/topics\.py|encodings/(cp\d+|iso8859_\d+|mac_\w+|koi8_\w+|kz1048|"
                      r"hp_roman8|palmos|ptcp154|tis_620)\.py)$")
    for name in ("libpython3.11-minimal", "libpython3.11-stdlib"):
        pkg = ctx.pm.pkgs[name]
        paths = [p for p in pkg.regular_files(r"^/usr/lib/python3\.11/.*\.py$")
                 if "/dist-packages/" not in p and not skip.search(p)]
        yield from files_text(pkg, paths, stats)


_LICENCE_WORDS = re.compile(r"copyright|licen[cs]e|warranty", re.I)


def strip_licence_header(text):
    """Drops the leading comment blocks of a C/C++ file that are licence boilerplate.

    Every glibc/kernel/libstdc++ header opens with the same ~1 KB licence comment; keeping
    them would make a sizeable share of the code domain one repeated paragraph. An SPDX line
    is kept (it is short and says the licence)."""
    rest = text.lstrip("\n")
    kept = []
    while True:
        if rest.startswith("/*"):
            end = rest.find("*/")
            if end < 0:
                break
            block, after = rest[:end + 2], rest[end + 2:]
        elif rest.startswith("//"):
            lines = rest.split("\n")
            n = 0
            while n < len(lines) and (lines[n].startswith("//") or not lines[n].strip()):
                n += 1
            while n > 0 and not lines[n - 1].strip():
                n -= 1
            block, after = "\n".join(lines[:n]), "\n" + "\n".join(lines[n:])
        else:
            break
        if "SPDX-License-Identifier" in block and len(block) < 120:
            kept.append(block)
        elif not _LICENCE_WORDS.search(block):
            break
        rest = after.lstrip("\n")
    return "\n".join(kept + [rest]) if kept else rest


def src_headers(pkg_name, pattern):
    def src(ctx, stats):
        pkg = ctx.pm.pkgs[pkg_name]
        for p, text in files_text(pkg, pkg.regular_files(pattern), stats):
            yield p, strip_licence_header(text)
    return src


def src_perl(ctx, stats):
    pkg = ctx.pm.pkgs["perl-modules-5.36"]
    paths = [p for p in pkg.regular_files(r"^/usr/share/perl/5\.36[.0-9]*/.*\.(pm|pl)$") if "/unicore/" not in p]
    yield from files_text(pkg, paths, stats)


def gsm8k_format(item):
    q = item["question"].strip()
    ans = re.sub(r"<<[^>]*>>", "", item["answer"]).strip()
    body, sep, final = ans.rpartition("####")
    if not sep:
        raise ValueError("GSM8K answer without '####'")
    body, final = body.strip(), final.strip()
    # One item = one block with no blank line inside, so items stay apart in the split files.
    q, body = re.sub(r"\n\s*\n+", "\n", q), re.sub(r"\n\s*\n+", "\n", body)
    return f"Question: {q}\nAnswer: {body}\nThe answer is {final}."


def src_gsm8k_train(ctx, stats):
    path = EVAL / "gsm8k" / "train.jsonl"
    data = path.read_bytes()
    stats["input_files"] += 1
    stats["input_bytes"] += len(data)
    for i, line in enumerate(data.decode("utf-8").splitlines()):
        if line.strip():
            yield f"gsm8k-train:{i}", gsm8k_format(json.loads(line))


def src_bible(ctx, stats):
    text_pkg, prog_pkg = ctx.pm.pkgs["bible-kjv-text"], ctx.pm.pkgs["bible-kjv"]
    datadir = str(text_pkg.path("/usr/lib"))
    prog = str(prog_pkg.path("/usr/bin/bible"))
    r = subprocess.run([prog, "-p", datadir, "-l", "9999", "gen1:1-rev22:21"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, LC_ALL="C.UTF-8"))
    if r.returncode != 0 or not r.stdout:
        raise CorpusError(f"`bible` could not dump the KJV text: {r.stderr.decode(errors='replace').strip()}")
    stats["input_files"] += 1
    stats["input_bytes"] += len(r.stdout)
    text = r.stdout.decode("utf-8")
    title, verses = None, []
    heading = re.compile(r"^(\S.*?) (\d+)$")
    verse = re.compile(r"^\s+(\d+) (.*)$")
    for line in text.split("\n"):
        m = verse.match(line)
        if m and title:
            verses.append(m.group(2).strip())
            continue
        m = heading.match(line)
        if m:
            if title and verses:
                yield f"kjv:{title}", title + "\n\n" + "\n".join(verses)
            title, verses = line.strip(), []
    if title and verses:
        yield f"kjv:{title}", title + "\n\n" + "\n".join(verses)


def src_frankenstein(ctx, stats):
    path = EVAL / "prose" / "frankenstein.txt"
    data = path.read_bytes()
    stats["input_files"] += 1
    stats["input_bytes"] += len(data)
    text = data.decode("utf-8").replace("\r\n", "\n")
    parts = re.split(r"(?m)^(?=(?:Letter|Chapter) \d+\s*$)", text)
    for i, part in enumerate(parts):
        if part.strip():
            yield f"frankenstein:{i}", part


def src_austen(ctx, stats):
    pkg = ctx.pm.pkgs["r-cran-janeaustenr"]
    db = load_r_lazydb(pkg.path("/usr/lib/R/site-library/janeaustenr/data/Rdata"))
    stats["input_files"] += 1
    heading = re.compile(r"^(CHAPTER|Chapter)\s+([0-9]+|[IVXLC]+)\.?\s*$")
    for book in sorted(db):
        lines = [l or "" for l in db[book]]
        stats["input_bytes"] += sum(len(l.encode("utf-8")) + 1 for l in lines)
        chapters, cur = [], []
        for line in lines:
            if heading.match(line.strip()) and any(l.strip() for l in cur):
                chapters.append(cur)
                cur = []
            cur.append(line)
        chapters.append(cur)
        for i, ch in enumerate(chapters):
            yield f"austen:{book}:{i}", unwrap_paragraphs(ch)


def _dictd_b64(s):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    v = 0
    for ch in s:
        v = v * 64 + alphabet.index(ch)
    return v


def src_devil(ctx, stats):
    pkg = ctx.pm.pkgs["dict-devil"]
    data = gzip.decompress(pkg.path("/usr/share/dictd/devil.dict.dz").read_bytes())
    index = pkg.path("/usr/share/dictd/devil.index").read_text(encoding="utf-8")
    stats["input_files"] += 1
    stats["input_bytes"] += len(data)
    entries = {}
    for line in index.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00database"):
            continue
        off, ln = _dictd_b64(parts[1]), _dictd_b64(parts[2])
        entries[(off, ln)] = parts[0]
    groups = {}
    for (off, ln), word in sorted(entries.items()):
        entry = data[off:off + ln].decode("utf-8").strip("\n")
        letter = word[:1].upper() if word[:1].isalpha() else "#"
        groups.setdefault(letter, []).append(entry)
    for letter in sorted(groups):
        yield f"devil:{letter}", "\n\n".join(groups[letter])


def src_python_docs(ctx, stats):
    pkg = ctx.pm.pkgs["python3.11-doc"]
    skip = re.compile(r"/(genindex[^/]*|py-modindex|search|contents|index|download|copyright|license|bugs|"
                      r"about)\.html$")
    paths = [p for p in pkg.regular_files(r"^/usr/share/doc/python3\.11/html/.*\.html$") if not skip.search(p)]
    real = [str(pkg.path(p)) for p in paths]
    stats["input_files"] += len(paths)
    stats["input_bytes"] += sum(os.path.getsize(r) for r in real)
    with concurrent.futures.ProcessPoolExecutor(ctx.jobs) as ex:
        for p, text in zip(paths, ex.map(_html_file_to_text, real, chunksize=8)):
            if text is None:
                stats["dropped_undecodable"] += 1
                continue
            yield p, text


def src_linux_docs(ctx, stats):
    pkg = ctx.pm.pkgs["linux-doc-6.1"]
    base = "/usr/share/doc/linux-doc-6.1/Documentation/"
    paths = [p for p in pkg.regular_files(r"\.(rst|txt)(\.gz)?$")
             if p.startswith(base) and not p.startswith(base + "translations/")
             and not p.startswith(base + "devicetree/bindings/") and not p.startswith(base + "sphinx")]
    yield from files_text(pkg, paths, stats)


def src_manpages(ctx, stats):
    items = []
    for name in ("manpages", "manpages-dev"):
        pkg = ctx.pm.pkgs[name]
        for p in pkg.regular_files(r"^/usr/share/man/man[0-9][^/]*/[^/]+\.gz$"):
            items.append((p, str(pkg.path(p))))
    stats["input_files"] += len(items)
    batches = [items[i:i + 40] for i in range(0, len(items), 40)]
    with concurrent.futures.ThreadPoolExecutor(ctx.jobs) as ex:
        for batch, texts in zip(batches, ex.map(_render_man_batch, [[r for _, r in b] for b in batches])):
            for (p, real), text in zip(batch, texts):
                stats["input_bytes"] += len(read_maybe_gz(real))
                if text is None:
                    stats["dropped_undecodable"] += 1
                elif text:
                    yield p, text


WN_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather "
    "adj.ppl").split()
WN_POS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}


def src_wordnet(ctx, stats, per_doc=60):
    pkg = ctx.pm.pkgs["wordnet-base"]
    groups = {}
    for pos in ("noun", "verb", "adj", "adv"):
        data = pkg.path(f"/usr/share/wordnet/data.{pos}").read_bytes()
        stats["input_files"] += 1
        stats["input_bytes"] += len(data)
        for line in data.decode("utf-8").split("\n"):
            if not line or line.startswith("  "):
                continue
            head, _, gloss = line.partition(" | ")
            f = head.split()
            lexfile, ss_type, w_cnt = int(f[1]), f[2], int(f[3], 16)
            words = [re.sub(r"\([a-z]+\)$", "", f[4 + 2 * i]).replace("_", " ") for i in range(w_cnt)]
            lex = WN_LEXNAMES[lexfile] if lexfile < len(WN_LEXNAMES) else f"lex{lexfile}"
            groups.setdefault(lex, []).append(f"{', '.join(words)} ({WN_POS[ss_type]}): {gloss.strip()}")
    for lex in sorted(groups):
        entries = groups[lex]
        for i in range(0, len(entries), per_doc):
            yield f"wordnet:{lex}:{i // per_doc}", "\n".join(entries[i:i + per_doc])


def src_wikitext_valid(ctx, stats):
    path = EVAL / "wikitext2" / "valid.txt"
    data = path.read_bytes()
    stats["input_files"] += 1
    stats["input_bytes"] += len(data)
    text = data.decode("utf-8")
    parts = re.split(r"(?m)^(?= = [^=].* = $)", text)
    for i, part in enumerate(parts):
        if part.strip():
            yield f"wikitext2-valid:{i}", part


# name, domain, packages (installed), packages (unpacked only), shared files, licence, min_chars, fn, what
SOURCES = [
    ("python-stdlib", "code", ["libpython3.11-minimal", "libpython3.11-stdlib"], [], [], "PSF-2.0", None,
     src_python_stdlib, "Python 3.11 standard library sources (/usr/lib/python3.11/**/*.py; generated "
     "codec tables and pydoc_data/topics.py left out)"),
    ("glibc-headers", "code", ["libc6-dev"], [], [], "LGPL-2.1+", None,
     src_headers("libc6-dev", r"^/usr/include/.*\.h$"), "GNU C library headers (/usr/include/**/*.h)"),
    ("linux-uapi-headers", "code", ["linux-libc-dev"], [], [], "GPL-2.0 WITH Linux-syscall-note", None,
     src_headers("linux-libc-dev", r"^/usr/include/.*\.h$"), "Linux kernel user-space API headers"),
    ("libstdcxx-headers", "code", ["libstdc++-12-dev"], [], [], "GPL-3.0+ WITH GCC-exception-3.1", None,
     src_headers("libstdc++-12-dev", r"^/usr/include/c\+\+/12/"), "GNU C++ standard library headers "
     "(/usr/include/c++/12)"),
    ("perl-modules", "code", ["perl-modules-5.36"], [], [], "GPL-1.0+ OR Artistic-1.0", None, src_perl,
     "Perl 5.36 core modules (/usr/share/perl/5.36/**/*.pm|pl; generated unicore tables left out)"),
    ("gsm8k-train", "math", [], [], ["gsm8k/train.jsonl"], "MIT", 100, src_gsm8k_train,
     "GSM8K train: grade-school maths word problems with worked solutions (calculator annotations "
     "stripped, '#### N' -> 'The answer is N.')"),
    ("bible-kjv", "prose", ["bible-kjv-text", "bible-kjv"], [], [], "public domain (KJV 1611 text)", 100,
     src_bible, "King James Bible, one document per chapter (dumped with the package's `bible` program)"),
    ("frankenstein", "prose", [], [], ["prose/frankenstein.txt"], "public domain (Project Gutenberg)", None,
     src_frankenstein, "Mary Shelley, Frankenstein (1818), one document per letter/chapter"),
    ("jane-austen", "prose", [], ["r-cran-janeaustenr"], [], "public domain texts; package MIT", None,
     src_austen, "Jane Austen's six novels (from the package's R data), one document per chapter, "
     "paragraphs unwrapped"),
    ("devils-dictionary", "prose", [], ["dict-devil"], [], "public domain", None, src_devil,
     "Ambrose Bierce, The Devil's Dictionary (1911), one document per initial letter"),
    ("python-docs", "reference", ["python3.11-doc"], [], [], "PSF-2.0", None, src_python_docs,
     "Python 3.11 documentation, HTML main body converted to plain text (indexes left out)"),
    ("linux-docs", "reference", ["linux-doc-6.1"], [], [], "GPL-2.0 (kernel documentation)", None,
     src_linux_docs, "Linux 6.1 Documentation/**/*.rst|txt (translations and DT bindings left out)"),
    ("man-pages", "reference", ["manpages", "manpages-dev"], [], [], "Linux man-pages licences "
     "(verbatim/copyleft, GPL-2+, BSD; per page)", None, src_manpages,
     "Linux man-pages (sections 1-8) rendered to plain text with groff"),
    ("wordnet", "reference", ["wordnet-base"], [], [], "WordNet 3.0 licence (BSD-like)", None, src_wordnet,
     "WordNet 3.0 synsets and glosses, 60 per document grouped by lexicographer file"),
    ("wikitext2-valid", "reference", [], [], ["wikitext2/valid.txt"], "CC BY-SA 3.0 (Wikipedia)", None,
     src_wikitext_valid, "WikiText-2 validation split as distributed (tokenised, with <unk>), one "
     "document per article"),
]

# Evaluation sets: no corpus document may share a word n-gram with these.
def eval_texts():
    """(label, path, [texts]) for every evaluation set kept out of the corpus."""
    out = []
    for name in ("test.jsonl", "test_socratic.jsonl"):
        p = EVAL / "gsm8k" / name
        if p.exists():
            texts = []
            for line in p.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    d = json.loads(line)
                    texts += [d["question"], re.sub(r"<<[^>]*>>", "", d["answer"])]
            out.append((f"gsm8k/{name}", p, texts))
    for sub in ("dev", "test"):
        d = EVAL / "mmlu" / sub
        if d.is_dir():
            import csv
            for p in sorted(d.glob("*.csv")):
                with open(p, encoding="utf-8", newline="") as f:
                    rows = list(csv.reader(f))
                texts = [" ".join(r[:-1]) for r in rows[1:]]
                out.append((f"mmlu/{sub}/{p.name}", p, texts))
    for name in ("arc_easy.jsonl", "piqa.jsonl"):
        p = EVAL / "mc" / name
        if p.exists():
            texts = []
            for line in p.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    d = json.loads(line)
                    texts.append(d.get("query", "") + " " + " ".join(d.get("choices", [])))
            out.append((f"mc/{name}", p, texts))
    p = EVAL / "wikitext2" / "test.txt"
    if p.exists():
        out.append(("wikitext2/test.txt", p, p.read_text(encoding="utf-8").split("\n")))
    return out


_WORD = re.compile(r"[a-z0-9]+")


def _words(text):
    return _WORD.findall(text.replace("<unk>", " ").lower())  # WikiText's <unk> is no evidence


def ngrams(text, n):
    """The informative word n-grams of an eval text: at least n/2 words with a letter and
    n/2 distinct words, so "1 2 3 ... 13" or "the the the ..." are no evidence of overlap."""
    w = _words(text)
    out = set()
    for i in range(len(w) - n + 1):
        g = w[i:i + n]
        if sum(1 for t in g if not t.isdigit()) * 2 >= n and len(set(g)) * 2 >= n:
            out.add(" ".join(g))
    return out


def has_ngram(text, n, table):
    w = _words(text)
    for i in range(len(w) - n + 1):
        if " ".join(w[i:i + n]) in table:
            return True
    return False


_EVAL_TABLE = None


def _contaminated(args):
    text, n = args
    return has_ngram(text, n, _EVAL_TABLE)


# ----------------------------------------------------------------------------------------
# Build
# ----------------------------------------------------------------------------------------

class Ctx:
    pass


def near_key(text):
    return hashlib.sha1(re.sub(r"[\W_]+", "", text.lower()).encode("utf-8")).digest()


def split_domain(docs, rng_seed, frac, min_eval_bytes, max_train_bytes):
    """docs: list of (source, doc_id, text, nbytes) in canonical order -> {split: [docs]}, unused."""
    order = list(docs)
    random.Random(rng_seed).shuffle(order)
    total = sum(d[3] for d in order)
    expected_train = min(total * (1 - 2 * frac), max_train_bytes)
    target = max(frac * expected_train, min_eval_bytes)
    target = min(target, total / 8)  # a small domain keeps at least 3/4 for training
    out = {s: [] for s in SPLITS}
    used = {s: 0 for s in SPLITS}
    unused = []
    it = iter(order)
    for split in ("test", "valid"):
        for d in it:
            out[split].append(d)
            used[split] += d[3]
            if used[split] >= target:
                break
    for d in it:  # + 2: the "\n\n" separator, so the file itself stays within the cap
        if used["train"] + d[3] + 2 <= max_train_bytes:
            out["train"].append(d)
            used["train"] += d[3] + 2
        else:
            unused.append(d)
    return out, unused


def count_words(text):
    return len(text.split())


def build(args):
    out = Path(args.out)
    cache = Path(args.cache_dir) if args.cache_dir else out / ".cache"
    pm = PackageManager(cache, allow_apt=not args.no_apt)
    ctx = Ctx()
    ctx.pm, ctx.jobs = pm, args.jobs

    sources = [s for s in SOURCES if s[0] not in set(args.skip_source)]
    unknown = set(args.skip_source) - {s[0] for s in SOURCES}
    if unknown:
        raise CorpusError(f"--skip-source: unknown source(s) {sorted(unknown)}; known: {[s[0] for s in SOURCES]}")

    # 1. packages and shared files
    for name, _, _, _, shared, *_ in sources:
        for rel in shared:
            if not (EVAL / rel).exists():
                raise CorpusError(f"source {name}: {EVAL / rel} is missing (set MF_SHARED to the shared folder)")
    need_install = [p for s in sources for p in s[2]]
    if any(s[0] == "man-pages" for s in sources):
        need_install.append("groff-base")  # the renderer (a tool, not a text source)
    log(f"checking Debian packages: {' '.join(need_install)}")
    pm.install(list(dict.fromkeys(need_install)))
    for s in sources:
        for p in s[3]:
            pm.unpack(p)
    if "groff-base" in need_install and not shutil.which("groff"):
        raise CorpusError("man-pages needs groff (Debian package groff-base); as root: "
                          "apt-get install -y --no-install-recommends groff-base")
    for s in sources:
        for p in s[2] + s[3]:
            if p not in pm.pkgs:
                raise CorpusError(f"source {s[0]}: Debian package {p} is missing and could not be installed")

    # 2. eval n-gram table
    global _EVAL_TABLE
    eval_sets = []
    table = set()
    if args.decontam_ngram > 0:
        for label, path, texts in eval_texts():
            for t in texts:
                table |= ngrams(t, args.decontam_ngram)
            eval_sets.append({"name": label, "sha256": sha256_file(path), "items": len(texts)})
        log(f"decontamination: {len(table)} distinct {args.decontam_ngram}-grams from {len(eval_sets)} eval files")
    _EVAL_TABLE = table

    # 3. extract, normalise, chunk, filter, dedup, decontaminate
    seen_exact, seen_near = set(), set()
    domain_docs = {d: [] for d in DOMAINS}
    source_meta = []
    for name, domain, pkgs_i, pkgs_u, shared, licence, min_chars, fn, what in sources:
        stats = {k: 0 for k in ("input_files", "input_bytes", "raw_documents", "dropped_undecodable",
                                "dropped_short", "dropped_duplicate", "dropped_near_duplicate",
                                "dropped_contaminated", "documents", "bytes", "chars")}
        t = time.monotonic()
        min_len = args.min_chars if min_chars is None else min(min_chars, args.min_chars)
        kept = []
        for doc_id, text in fn(ctx, stats):
            stats["raw_documents"] += 1
            text = normalise(text)
            pieces = chunk_text(text, args.max_doc_chars)
            for k, piece in enumerate(pieces):
                pid = doc_id if len(pieces) == 1 else f"{doc_id}#{k}"
                if len(piece) < min_len:
                    stats["dropped_short"] += 1
                    continue
                b = piece.encode("utf-8")
                h = hashlib.sha256(b).digest()
                if h in seen_exact:
                    stats["dropped_duplicate"] += 1
                    continue
                seen_exact.add(h)
                nk = near_key(piece)
                if nk in seen_near:
                    stats["dropped_near_duplicate"] += 1
                    continue
                seen_near.add(nk)
                kept.append((name, pid, piece, len(b)))
        if table:
            with concurrent.futures.ProcessPoolExecutor(args.jobs) as ex:
                flags = list(ex.map(_contaminated, [(d[2], args.decontam_ngram) for d in kept], chunksize=64))
            clean = []
            for d, bad in zip(kept, flags):
                if bad:
                    stats["dropped_contaminated"] += 1
                    if args.verbose:
                        log(f"  contaminated: {d[1]}")
                else:
                    clean.append(d)
            kept = clean
        stats["documents"] = len(kept)
        stats["bytes"] = sum(d[3] for d in kept)
        stats["chars"] = sum(len(d[2]) for d in kept)
        domain_docs[domain] += kept
        pkg_info = [{"name": p, "version": pm.pkgs[p].version, "how": pm.pkgs[p].how,
                     "copyright": f"/usr/share/doc/{p}/copyright"} for p in pkgs_i + pkgs_u]
        shared_info = [{"path": f"../shared/data/eval/{rel}", "sha256": sha256_file(EVAL / rel)} for rel in shared]
        source_meta.append({"name": name, "domain": domain, "description": what, "licence": licence,
                            "packages": pkg_info, "files": shared_info, "min_chars": min_len, "stats": stats})
        log(f"{domain}/{name}: {stats['documents']} docs, {stats['bytes'] / 1e6:.2f} MB kept of "
            f"{stats['raw_documents']} raw docs ({stats['input_bytes'] / 1e6:.2f} MB in; short "
            f"{stats['dropped_short']}, dup {stats['dropped_duplicate']}+{stats['dropped_near_duplicate']}, "
            f"contaminated {stats['dropped_contaminated']}, undecodable {stats['dropped_undecodable']}) "
            f"[{time.monotonic() - t:.1f}s]")

    # 4. split and write
    cap = int(args.max_mb_per_domain * 1e6)
    if out.exists():
        for d in DOMAINS:
            if (out / d).exists():
                shutil.rmtree(out / d)
    out.mkdir(parents=True, exist_ok=True)
    domains_meta = {}
    per_source_split = {s["name"]: {sp: {"documents": 0, "bytes": 0} for sp in SPLITS + ("unused",)}
                        for s in source_meta}
    for domain in DOMAINS:
        docs = domain_docs[domain]
        if not docs:
            raise CorpusError(f"domain {domain}: no documents (all its sources skipped?)")
        splits, unused = split_domain(docs, f"{args.seed}:{domain}", args.eval_frac, args.min_eval_kb * 1000, cap)
        (out / domain).mkdir(parents=True, exist_ok=True)
        dm = {"available_documents": len(docs), "available_bytes": sum(d[3] for d in docs),
              "unused_over_cap": {"documents": len(unused), "bytes": sum(d[3] for d in unused)}, "splits": {}}
        for split in SPLITS:
            body = "\n\n".join(d[2] for d in splits[split]) + "\n"
            data = body.encode("utf-8")
            path = out / domain / f"{split}.txt"
            path.write_bytes(data)
            dm["splits"][split] = {"file": f"{domain}/{split}.txt", "documents": len(splits[split]),
                                   "chars": len(body), "bytes": len(data), "words": count_words(body),
                                   "lines": body.count("\n"), "sha256": sha256_bytes(data)}
            for d in splits[split]:
                per_source_split[d[0]][split]["documents"] += 1
                per_source_split[d[0]][split]["bytes"] += d[3]
            log(f"wrote {path} ({len(splits[split])} docs, {len(data) / 1e6:.2f} MB)")
        for d in unused:
            per_source_split[d[0]]["unused"]["documents"] += 1
            per_source_split[d[0]]["unused"]["bytes"] += d[3]
        domains_meta[domain] = dm
    for s in source_meta:
        s["splits"] = per_source_split[s["name"]]

    manifest = {
        "format": "moeforge-corpus/1",
        "generator": "scripts/build_corpus.py",
        "command": "python3 scripts/build_corpus.py " + " ".join(
            [f"--out {_display_path(out)}", f"--max-mb-per-domain {args.max_mb_per_domain:g}", f"--seed {args.seed}"]
            + ([f"--skip-source {s}" for s in args.skip_source])),
        "options": {"seed": args.seed, "max_mb_per_domain": args.max_mb_per_domain, "eval_frac": args.eval_frac,
                    "min_eval_kb": args.min_eval_kb, "min_chars": args.min_chars,
                    "max_doc_chars": args.max_doc_chars, "decontam_ngram": args.decontam_ngram,
                    "skip_source": sorted(args.skip_source)},
        "document_separator": "\n\n",
        "domains": domains_meta,
        "sources": source_meta,
        "decontaminated_against": eval_sets,
        "excluded": [
            "GSM8K test and test_socratic (only GSM8K train is used, for math train/valid/test)",
            "WikiText-2 test (only WikiText-2 valid is used, in reference training data)",
            "MMLU dev/test, ARC-Easy, PIQA (evaluation only)",
            f"any document sharing a {args.decontam_ngram}-word n-gram with the evaluation sets above",
        ],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "manifest.md").write_text(manifest_markdown(manifest), encoding="utf-8")
    log(f"wrote {out / 'manifest.json'} and manifest.md")
    return manifest


def _display_path(path):
    """path relative to the repository when inside it (so the manifest does not name the checkout)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _mb(b):
    return f"{b / 1e6:.2f} MB"


def manifest_markdown(m):
    lines = ["| domain | split | documents | chars | bytes | tokens (BPE) | words (whitespace) | sha256 |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for d, dm in m["domains"].items():
        for s, sm in dm["splits"].items():
            lines.append(f"| {d} | {s} | {sm['documents']:,} | {sm['chars']:,} | {sm['bytes']:,} | TBD | "
                         f"{sm['words']:,} | `{sm['sha256'][:16]}` |")
    lines += ["", "| domain | documents available | size available | left out by the train cap |",
              "|---|---:|---:|---:|"]
    for d, dm in m["domains"].items():
        u = dm["unused_over_cap"]
        lines.append(f"| {d} | {dm['available_documents']:,} | {_mb(dm['available_bytes'])} | "
                     f"{u['documents']:,} docs, {_mb(u['bytes'])} |")
    lines += ["", "| domain | source | package (version) | licence | documents kept | size kept | "
              "train / valid / test docs | dropped: short / dup / near-dup / contaminated / undecodable |",
              "|---|---|---|---|---:|---:|---|---|"]
    for s in m["sources"]:
        st = s["stats"]
        pk = "<br>".join(f"{p['name']} ({p['version']})" for p in s["packages"]) or \
             "<br>".join(f"{f['path']}" for f in s["files"])
        sp = s["splits"]
        lines.append(f"| {s['domain']} | {s['name']} | {pk} | {s['licence']} | {st['documents']:,} | "
                     f"{_mb(st['bytes'])} | {sp['train']['documents']:,} / {sp['valid']['documents']:,} / "
                     f"{sp['test']['documents']:,} | {st['dropped_short']} / {st['dropped_duplicate']} / "
                     f"{st['dropped_near_duplicate']} / {st['dropped_contaminated']} / "
                     f"{st['dropped_undecodable']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "data" / "corpus"), help="output folder (default data/corpus)")
    ap.add_argument("--max-mb-per-domain", type=float, default=25.0,
                    help="cap on each domain's train split, in MB of UTF-8 text (default 25)")
    ap.add_argument("--seed", type=int, default=1234, help="shuffle seed (default 1234)")
    ap.add_argument("--eval-frac", type=float, default=0.02, help="valid and test share each (default 0.02)")
    ap.add_argument("--min-eval-kb", type=float, default=200,
                    help="valid and test get at least this many KB where the domain allows (default 200)")
    ap.add_argument("--min-chars", type=int, default=200, help="drop shorter documents (default 200)")
    ap.add_argument("--max-doc-chars", type=int, default=50000,
                    help="cut longer documents at blank lines into pieces of at most this (default 50000)")
    ap.add_argument("--decontam-ngram", type=int, default=13,
                    help="drop documents sharing a word n-gram of this length with an eval set; 0 = off")
    ap.add_argument("--skip-source", action="append", default=[], metavar="NAME",
                    help="leave a source out (repeatable); names: " + ", ".join(s[0] for s in SOURCES))
    ap.add_argument("--cache-dir", default=None, help="where unpacked .debs go (default <out>/.cache)")
    ap.add_argument("--no-apt", action="store_true", help="never run apt-get; fail if a package is missing")
    ap.add_argument("--jobs", type=int, default=max(1, min(8, os.cpu_count() or 1)),
                    help="worker processes (default: CPU count, at most 8)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        m = build(args)
    except CorpusError as e:
        print(f"build_corpus: error: {e}", file=sys.stderr)
        return 1
    for d, dm in m["domains"].items():
        parts = ", ".join(f"{s} {sm['documents']} docs {_mb(sm['bytes'])}" for s, sm in dm["splits"].items())
        log(f"{d}: {parts}")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
