#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <unordered_map>
#include <vector>

#include "tokenizer/unicode_tables.h"

namespace mf::unicode {

namespace ut = unicode_tables;

Decoded decode_utf8(std::string_view s, size_t i) {
  const auto b0 = uint8_t(s[i]);
  if (b0 < 0x80) return {b0, 1};
  uint32_t len, cp, min_cp;
  if ((b0 & 0xE0) == 0xC0) { len = 2; cp = b0 & 0x1F; min_cp = 0x80; }
  else if ((b0 & 0xF0) == 0xE0) { len = 3; cp = b0 & 0x0F; min_cp = 0x800; }
  else if ((b0 & 0xF8) == 0xF0) { len = 4; cp = b0 & 0x07; min_cp = 0x10000; }
  else return {kInvalid, 1};
  if (i + len > s.size()) return {kInvalid, 1};
  for (uint32_t k = 1; k < len; ++k) {
    const auto b = uint8_t(s[i + k]);
    if ((b & 0xC0) != 0x80) return {kInvalid, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {kInvalid, 1};
  return {cp, len};
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

namespace {

bool in_ranges(const ut::CodepointRange* r, size_t n, uint32_t cp) {
  const auto* end = r + n;
  const auto* it = std::upper_bound(r, end, cp, [](uint32_t c, const ut::CodepointRange& x) { return c < x.lo; });
  return it != r && cp <= (it - 1)->hi;
}

CharClass classify_slow(uint32_t cp) {
  if (cp == kInvalid) return CharClass::Other;
  if (in_ranges(ut::kLetter, ut::kLetterCount, cp)) return CharClass::Letter;
  if (in_ranges(ut::kNumber, ut::kNumberCount, cp)) return CharClass::Number;
  if (in_ranges(ut::kWhitespace, ut::kWhitespaceCount, cp)) return CharClass::Space;
  return CharClass::Other;
}

// Classes of the first 256 code points, looked up without a search (most text is here).
const std::array<CharClass, 256>& latin1_classes() {
  static const auto table = [] {
    std::array<CharClass, 256> t{};
    for (uint32_t cp = 0; cp < 256; ++cp) t[cp] = classify_slow(cp);
    return t;
  }();
  return table;
}

}  // namespace

CharClass classify(uint32_t cp) {
  if (cp < 256) return latin1_classes()[cp];
  return classify_slow(cp);
}

// ---- NFC ----------------------------------------------------------------------------

namespace {

// Hangul syllables compose and decompose algorithmically (Unicode ch. 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

uint8_t combining_class(uint32_t cp) {
  if (cp < 0x300) return 0;
  const auto* r = ut::kCombiningClass;
  const auto* end = r + ut::kCombiningClassCount;
  const auto* it = std::upper_bound(r, end, cp, [](uint32_t c, const ut::CombiningClassRange& x) { return c < x.lo; });
  return (it != r && cp <= (it - 1)->hi) ? (it - 1)->ccc : 0;
}

const ut::Decomposition* find_decomposition(uint32_t cp) {
  const auto* r = ut::kDecomposition;
  const auto* end = r + ut::kDecompositionCount;
  const auto* it = std::lower_bound(r, end, cp, [](const ut::Decomposition& x, uint32_t c) { return x.cp < c; });
  return (it != end && it->cp == cp) ? it : nullptr;
}

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  const auto* d = find_decomposition(cp);
  if (!d) { out.push_back(cp); return; }
  decompose(d->first, out);
  if (d->second) decompose(d->second, out);
}

uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }

const std::unordered_map<uint64_t, uint32_t>& compositions() {
  static const auto map = [] {
    std::unordered_map<uint64_t, uint32_t> m;
    const auto* ex = ut::kCompositionExcluded;
    const auto* ex_end = ex + ut::kCompositionExcludedCount;
    for (size_t i = 0; i < ut::kDecompositionCount; ++i) {
      const auto& d = ut::kDecomposition[i];
      if (d.second && !std::binary_search(ex, ex_end, d.cp)) m.emplace(pair_key(d.first, d.second), d.cp);
    }
    return m;
  }();
  return map;
}

uint32_t compose_pair(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto& m = compositions();
  auto it = m.find(pair_key(a, b));
  return it == m.end() ? 0 : it->second;
}

// Decompose, reorder by combining class, recompose: one run of valid code points.
void nfc_run(const std::vector<uint32_t>& cps, std::string& out) {
  std::vector<uint32_t> d;
  d.reserve(cps.size() + 8);
  for (uint32_t cp : cps) decompose(cp, d);
  std::vector<uint8_t> ccc(d.size());
  for (size_t i = 0; i < d.size(); ++i) ccc[i] = combining_class(d[i]);
  // Canonical ordering: stable sort of each run of non-starters by class.
  for (size_t i = 0; i < d.size();) {
    if (!ccc[i]) { ++i; continue; }
    size_t j = i;
    while (j < d.size() && ccc[j]) ++j;
    for (size_t a = i + 1; a < j; ++a)  // insertion sort: runs are tiny
      for (size_t b = a; b > i && ccc[b - 1] > ccc[b]; --b) {
        std::swap(d[b - 1], d[b]);
        std::swap(ccc[b - 1], ccc[b]);
      }
    i = j;
  }
  // Canonical composition: a character joins the last starter unless blocked.
  std::vector<uint32_t> res;
  std::vector<uint8_t> res_ccc;
  res.reserve(d.size());
  res_ccc.reserve(d.size());
  long starter = -1;
  for (size_t i = 0; i < d.size(); ++i) {
    const uint32_t c = d[i];
    const uint8_t cc = ccc[i];
    if (starter >= 0) {
      const uint8_t last = res_ccc.back();
      const bool adjacent = size_t(starter) + 1 == res.size();
      const bool blocked = !adjacent && (last == 0 || last >= cc);
      if (!blocked) {
        if (uint32_t comp = compose_pair(res[starter], c)) {
          res[starter] = comp;
          continue;
        }
      }
    }
    if (cc == 0) starter = long(res.size());
    res.push_back(c);
    res_ccc.push_back(cc);
  }
  for (uint32_t cp : res) append_utf8(out, cp);
}

// Code points that can change under NFC or make a neighbour change (NFC_Quick_Check No or
// Maybe, or a non-zero combining class). Text without any is already in NFC.
bool nfc_unstable(uint32_t cp) {
  static const std::vector<uint32_t> sorted = [] {
    std::vector<uint32_t> v;
    for (size_t i = 0; i < ut::kCombiningClassCount; ++i)
      for (uint32_t c = ut::kCombiningClass[i].lo; c <= ut::kCombiningClass[i].hi; ++c) v.push_back(c);
    const auto* ex = ut::kCompositionExcluded;
    const auto* ex_end = ex + ut::kCompositionExcludedCount;
    for (size_t i = 0; i < ut::kDecompositionCount; ++i) {
      const auto& d = ut::kDecomposition[i];
      if (!d.second || std::binary_search(ex, ex_end, d.cp)) v.push_back(d.cp);  // never in NFC
      else v.push_back(d.second);                                               // may compose with its left
    }
    for (uint32_t c = kVBase; c < kVBase + kVCount; ++c) v.push_back(c);
    for (uint32_t c = kTBase + 1; c < kTBase + kTCount; ++c) v.push_back(c);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }();
  return cp >= 0x300 && std::binary_search(sorted.begin(), sorted.end(), cp);
}

}  // namespace

std::string nfc(std::string_view s) {
  bool stable = true;
  for (size_t i = 0; i < s.size() && stable;) {
    if (uint8_t(s[i]) < 0x80) { ++i; continue; }
    const auto [cp, len] = decode_utf8(s, i);
    stable = cp == kInvalid || !nfc_unstable(cp);
    i += len;
  }
  if (stable) return std::string(s);
  std::string out;
  out.reserve(s.size());
  std::vector<uint32_t> run;
  for (size_t i = 0; i < s.size();) {
    const auto [cp, len] = decode_utf8(s, i);
    if (cp == kInvalid) {
      nfc_run(run, out);
      run.clear();
      out += s[i];
    } else {
      run.push_back(cp);
    }
    i += len;
  }
  nfc_run(run, out);
  return out;
}

}  // namespace mf::unicode
