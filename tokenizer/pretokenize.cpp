#include "tokenizer/pretokenize.h"

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace mf {

PreTokenizer pre_tokenizer_from_name(const std::string& name) {
  if (name == "gpt-2" || name == "gpt2" || name == "default") return PreTokenizer::Gpt2;
  if (name == "llama-bpe" || name == "llama3") return PreTokenizer::Llama3;
  if (name == "qwen2") return PreTokenizer::Qwen2;
  if (name == "smollm") return PreTokenizer::SmolLM;
  fail("unsupported pre-tokenizer '", name, "' (supported: gpt-2, llama-bpe, qwen2, smollm)");
}

namespace {

using unicode::CharClass;

struct Chars {
  std::vector<uint32_t> cp;
  std::vector<CharClass> cls;
  std::vector<size_t> offset;  // byte offset of each character, plus the end

  bool is(size_t i, size_t end, CharClass c) const { return i < end && cls[i] == c; }
  bool is_cp(size_t i, size_t end, uint32_t c) const { return i < end && cp[i] == c; }
  bool is_newline(size_t i, size_t end) const { return i < end && (cp[i] == '\r' || cp[i] == '\n'); }
};

Chars decode_chars(std::string_view text) {
  Chars c;
  c.cp.reserve(text.size());
  c.cls.reserve(text.size());
  c.offset.reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    const auto [cp, len] = unicode::decode_utf8(text, i);
    c.cp.push_back(cp);
    c.cls.push_back(unicode::classify(cp));
    c.offset.push_back(i);
    i += len;
  }
  c.offset.push_back(text.size());
  return c;
}

uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive (ASCII letters only). Returns the
// end of the match, or i when none.
size_t match_contraction(const Chars& c, size_t i, size_t end, bool icase) {
  if (!c.is_cp(i, end, '\'') || i + 1 >= end) return i;
  auto at = [&](size_t k) { return k < end ? (icase ? ascii_lower(c.cp[k]) : c.cp[k]) : 0u; };
  const uint32_t a = at(i + 1), b = at(i + 2);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return i;
}

// " ?X+" for a class X: an optional leading space (U+0020 only) joins a run of X.
size_t match_space_run(const Chars& c, size_t i, size_t end, CharClass x) {
  size_t j = i;
  if (c.is_cp(j, end, ' ') && c.is(j + 1, end, x)) ++j;
  if (!c.is(j, end, x)) return i;
  while (c.is(j, end, x)) ++j;
  return j;
}

// \s+(?!\S)|\s+ : a whitespace run, leaving its last character to the next token when a
// non-space follows and the run is longer than one.
size_t match_whitespace(const Chars& c, size_t i, size_t end) {
  size_t j = i;
  while (c.is(j, end, CharClass::Space)) ++j;
  if (j == i) return i;
  if (j == end || j - i == 1) return j;
  return j - 1;
}

size_t next_gpt2(const Chars& c, size_t i, size_t end) {
  size_t j;
  if ((j = match_contraction(c, i, end, false)) > i) return j;
  if ((j = match_space_run(c, i, end, CharClass::Letter)) > i) return j;
  if ((j = match_space_run(c, i, end, CharClass::Number)) > i) return j;
  if ((j = match_space_run(c, i, end, CharClass::Other)) > i) return j;
  if ((j = match_whitespace(c, i, end)) > i) return j;
  return i + 1;  // unreachable: every class is matched above
}

size_t next_llama3(const Chars& c, size_t i, size_t end, size_t max_digits) {
  size_t j;
  if ((j = match_contraction(c, i, end, true)) > i) return j;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  j = i;
  if (!c.is(j, end, CharClass::Letter) && !c.is(j, end, CharClass::Number) && !c.is_newline(j, end) &&
      c.is(j + 1, end, CharClass::Letter))
    ++j;
  if (c.is(j, end, CharClass::Letter)) {
    while (c.is(j, end, CharClass::Letter)) ++j;
    return j;
  }
  // \p{N}{1,max_digits}
  if (c.is(i, end, CharClass::Number)) {
    j = i;
    while (j - i < max_digits && c.is(j, end, CharClass::Number)) ++j;
    return j;
  }
  // " ?[^\s\p{L}\p{N}]+[\r\n]*"
  if ((j = match_space_run(c, i, end, CharClass::Other)) > i) {
    while (c.is_newline(j, end)) ++j;
    return j;
  }
  // \s*[\r\n]+ : backtracking leaves the match ending at the run's last newline.
  if (c.is(i, end, CharClass::Space)) {
    size_t run_end = i;
    while (c.is(run_end, end, CharClass::Space)) ++run_end;
    for (size_t k = run_end; k > i; --k)
      if (c.is_newline(k - 1, end)) return k;
  }
  if ((j = match_whitespace(c, i, end)) > i) return j;
  return i + 1;
}

void split_range(const Chars& c, size_t begin, size_t end, PreTokenizer pre,
                 std::vector<std::pair<size_t, size_t>>& out) {
  for (size_t i = begin; i < end;) {
    size_t j;
    switch (pre) {
      case PreTokenizer::Llama3: j = next_llama3(c, i, end, 3); break;
      case PreTokenizer::Qwen2: j = next_llama3(c, i, end, 1); break;
      default: j = next_gpt2(c, i, end); break;
    }
    out.emplace_back(c.offset[i], c.offset[j]);
    i = j;
  }
}

}  // namespace

void pretokenize(std::string_view text, PreTokenizer pre, std::vector<std::pair<size_t, size_t>>& out) {
  if (text.empty()) return;
  const Chars c = decode_chars(text);
  const size_t n = c.cp.size();
  if (pre != PreTokenizer::SmolLM) {
    split_range(c, 0, n, pre, out);
    return;
  }
  // SmolLM: Digits(individual_digits) first, then the GPT-2 regex within each stretch.
  size_t start = 0;
  for (size_t i = 0; i < n; ++i) {
    if (c.cls[i] != CharClass::Number) continue;
    split_range(c, start, i, PreTokenizer::Gpt2, out);
    out.emplace_back(c.offset[i], c.offset[i + 1]);
    start = i + 1;
  }
  split_range(c, start, n, PreTokenizer::Gpt2, out);
}

}  // namespace mf
