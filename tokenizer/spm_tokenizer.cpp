#include "tokenizer/spm_tokenizer.h"

#include <algorithm>
#include <queue>

#include "core/error.h"

namespace mf {

int parse_byte_token(std::string_view t) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  const int hi = hex(t[3]), lo = hex(t[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

namespace {

// Character length from the lead byte alone, clamped at the end (llama.cpp's utf8_len).
size_t utf8_char_len(std::string_view s, size_t i) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return std::min<size_t>(kLen[uint8_t(s[i]) >> 4], s.size() - i);
}

}  // namespace

SpmTokenizer::SpmTokenizer(TokenizerSpec spec)
    : Tokenizer(std::move(spec)),
      // llama.cpp: user-defined tokens always split out; control and unknown only when parsing specials.
      specials_(spec_, {TokenType::UserDefined}, {TokenType::Control, TokenType::Unknown}) {
  byte_id_.fill(-1);
  token_to_id_.reserve(spec_.tokens.size());
  for (size_t id = 0; id < spec_.tokens.size(); ++id) {
    token_to_id_[spec_.tokens[id]] = int32_t(id);  // last wins, as llama.cpp
    const TokenType type = spec_.types.empty() ? TokenType::Normal : spec_.types[id];
    const int b = type == TokenType::Byte ? parse_byte_token(spec_.tokens[id]) : -1;
    if (b >= 0 && byte_id_[b] < 0) byte_id_[b] = int32_t(id);
  }
  split_words_ = std::none_of(spec_.tokens.begin(), spec_.tokens.end(), [](const std::string& t) {
    size_t i = 0;  // past the leading run of U+2581, none may follow
    while (t.compare(i, kSpmSpace.size(), kSpmSpace) == 0) i += kSpmSpace.size();
    return t.find(kSpmSpace, i) != std::string::npos;
  });
}

int32_t SpmTokenizer::find(std::string_view piece) const {
  auto it = token_to_id_.find(piece);
  return it == token_to_id_.end() ? -1 : it->second;
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && spec_.add_bos) out.push_back(spec_.bos_id);
  bool prev_special = true;  // the dummy prefix goes on the first fragment and after each special token
  for (const auto& frag : specials_.split(text, parse_special)) {
    if (frag.id >= 0) {
      out.push_back(frag.id);
      prev_special = true;
      continue;
    }
    std::string t;
    t.reserve(frag.text.size() + 8);
    if (spec_.add_space_prefix && prev_special) t += kSpmSpace;
    for (char c : frag.text) {
      if (c == ' ') t += kSpmSpace;
      else t += c;
    }
    encode_fragment(t, out);
    prev_special = false;
  }
  if (add_special && spec_.add_eos) out.push_back(spec_.eos_id);
  return out;
}

void SpmTokenizer::encode_fragment(std::string_view text, std::vector<int32_t>& out) const {
  if (!split_words_) {
    merge(text, out);
    return;
  }
  // Cut at character starts (as merge() walks them) that begin a run of U+2581.
  size_t start = 0;
  bool prev_space = false;
  for (size_t i = 0; i < text.size();) {
    const bool space = text.compare(i, kSpmSpace.size(), kSpmSpace) == 0;
    if (space && !prev_space && i > start) {
      encode_cached(text.substr(start, i - start), out);
      start = i;
    }
    prev_space = space;
    i += utf8_char_len(text, i);
  }
  encode_cached(text.substr(start), out);
}

void SpmTokenizer::encode_cached(std::string_view word, std::vector<int32_t>& out) const {
  constexpr size_t kMaxCachedWordBytes = 64, kMaxCacheEntries = 1 << 16;
  if (word.size() > kMaxCachedWordBytes) {
    merge(word, out);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  merge(word, out);
  std::vector<int32_t> ids(out.begin() + long(start), out.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(std::string(word), std::move(ids));
}

void SpmTokenizer::merge(std::string_view text, std::vector<int32_t>& out) const {
  // Symbols are UTF-8 characters by lead byte (length clamped at the end, as llama.cpp).
  struct Sym { size_t pos, len; int32_t prev, next; };
  std::vector<Sym> syms;
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_char_len(text, i);
    const int32_t k = int32_t(syms.size());
    syms.push_back({i, len, k - 1, -1});
    if (k > 0) syms[k - 1].next = k;
    i += len;
  }
  if (syms.empty()) return;

  struct Bigram { float score; int32_t left, right; size_t len; };
  auto worse = [](const Bigram& a, const Bigram& b) { return a.score != b.score ? a.score < b.score : a.left > b.left; };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> heap(worse);
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const size_t len = syms[l].len + syms[r].len;
    const int32_t id = find(text.substr(syms[l].pos, len));
    if (id < 0) return;
    heap.push({spec_.scores.empty() ? 0.0f : spec_.scores[id], l, r, len});
  };
  for (int32_t i = 1; i < int32_t(syms.size()); ++i) try_pair(i - 1, i);
  while (!heap.empty()) {
    const Bigram b = heap.top();
    heap.pop();
    Sym& l = syms[b.left];
    Sym& r = syms[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_pair(l.prev, b.left);
    try_pair(b.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    const std::string_view piece = text.substr(syms[i].pos, syms[i].len);
    const int32_t id = find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Only unmerged characters can be missing: spell them as byte tokens.
    for (char c : piece) {
      const int32_t bid = byte_id_[uint8_t(c)] >= 0 ? byte_id_[uint8_t(c)] : spec_.unk_id;
      if (bid >= 0) out.push_back(bid);
    }
  }
}

std::string SpmTokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || id >= n_vocab()) fail("tokenizer: token id ", id, " out of range [0, ", n_vocab(), ")");
  const TokenType type = spec_.types.empty() ? TokenType::Normal : spec_.types[id];
  switch (type) {
    case TokenType::Control:
    case TokenType::Unused: return "";
    case TokenType::Unknown: return "\xE2\x96\x85";  // llama.cpp shows unknown tokens as U+2585
    case TokenType::Byte: {
      const int b = parse_byte_token(spec_.tokens[id]);
      if (b >= 0) return std::string(1, char(b));
      break;
    }
    default: break;
  }
  const std::string& t = spec_.tokens[id];
  std::string out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size();) {
    if (t.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
      out += ' ';
      i += kSpmSpace.size();
    } else {
      out += t[i++];
    }
  }
  return out;
}

std::string SpmTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  bool first_text = spec_.add_space_prefix;
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id);
    if (piece.empty()) continue;
    if (first_text && piece[0] == ' ') piece.erase(0, 1);
    first_text = false;
    out += piece;
  }
  return out;
}

}  // namespace mf
