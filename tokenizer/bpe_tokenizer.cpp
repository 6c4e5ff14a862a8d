#include "tokenizer/bpe_tokenizer.h"

#include <queue>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"

namespace mf {

namespace {
constexpr size_t kMaxCachedWordBytes = 64;
constexpr size_t kMaxCacheEntries = 1 << 16;
}  // namespace

BpeTokenizer::BpeTokenizer(TokenizerSpec spec)
    : Tokenizer(std::move(spec)),
      pre_(pre_tokenizer_from_name(spec_.pre)),
      specials_(spec_, {TokenType::UserDefined}, {TokenType::Control}) {
  if (spec_.normalizer != "" && spec_.normalizer != "nfc")
    fail("tokenizer: unsupported normalizer '", spec_.normalizer, "'");
  token_to_id_.reserve(spec_.tokens.size());
  for (size_t id = 0; id < spec_.tokens.size(); ++id) token_to_id_[spec_.tokens[id]] = int32_t(id);
  for (int b = 0; b < 256; ++b) {
    auto it = token_to_id_.find(byte_level::byte_to_piece(uint8_t(b)));
    byte_id_[b] = it == token_to_id_.end() ? -1 : it->second;
  }
  merges_.reserve(spec_.merges.size());
  for (size_t rank = 0; rank < spec_.merges.size(); ++rank) {
    const std::string& m = spec_.merges[rank];
    // As llama.cpp: the separator is the first space after the first byte.
    const size_t sep = m.find(' ', 1);
    if (sep == std::string::npos) fail("tokenizer: merge ", rank, " '", m, "' is not of the form 'a b'");
    const std::string left = m.substr(0, sep), right = m.substr(sep + 1);
    auto l = token_to_id_.find(left), r = token_to_id_.find(right), res = token_to_id_.find(left + right);
    if (l == token_to_id_.end() || r == token_to_id_.end() || res == token_to_id_.end())
      fail("tokenizer: merge ", rank, " '", m, "' names a piece that is not in the vocabulary");
    merges_.emplace(pair_key(l->second, r->second), Merge{int32_t(rank), res->second});  // first rank wins
  }
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && spec_.add_bos) out.push_back(spec_.bos_id);
  for (const auto& frag : specials_.split(text, parse_special)) {
    if (frag.id >= 0) out.push_back(frag.id);
    else encode_fragment(frag.text, out);
  }
  if (add_special && spec_.add_eos) out.push_back(spec_.eos_id);
  return out;
}

void BpeTokenizer::encode_fragment(std::string_view text, std::vector<int32_t>& out) const {
  std::string buf;
  if (spec_.normalizer == "nfc") {
    buf = unicode::nfc(text);
    text = buf;
  }
  if (spec_.add_prefix_space && !text.empty() && text[0] != ' ') {
    buf = " " + std::string(text);
    text = buf;
  }
  std::vector<std::pair<size_t, size_t>> words;
  pretokenize(text, pre_, words);
  for (const auto& [b, e] : words) encode_word(text.substr(b, e - b), out);
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() > kMaxCachedWordBytes) {
    bpe(word, out);
    return;
  }
  const std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  bpe(word, out);
  std::vector<int32_t> ids(out.begin() + long(start), out.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(key, std::move(ids));
}

// Merges the pair of lowest rank (leftmost on ties) until none applies, as Hugging Face's
// BPE::merge_word does, with a heap so long words (whitespace runs) stay O(n log n).
void BpeTokenizer::bpe(std::string_view word, std::vector<int32_t>& out) const {
  if (spec_.ignore_merges) {
    auto it = token_to_id_.find(byte_level::encode(word));
    if (it != token_to_id_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  struct Sym { int32_t id, prev, next; };
  std::vector<Sym> syms;
  syms.reserve(word.size());
  for (char c : word) {
    int32_t id = byte_id_[uint8_t(c)];
    if (id < 0) id = spec_.unk_id;  // byte missing from the vocabulary: unk, or dropped
    if (id < 0) continue;
    const int32_t i = int32_t(syms.size());
    syms.push_back({id, i - 1, -1});
    if (i > 0) syms[i - 1].next = i;
  }
  if (syms.empty()) return;

  struct Cand { int32_t rank, left, left_id, right_id, result; };
  auto worse = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.left > b.left; };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  auto push_pair = [&](int32_t l) {
    if (l < 0 || syms[l].next < 0) return;
    const int32_t r = syms[l].next;
    auto it = merges_.find(pair_key(syms[l].id, syms[r].id));
    if (it != merges_.end()) heap.push({it->second.rank, l, syms[l].id, syms[r].id, it->second.result});
  };
  for (int32_t i = 0; i + 1 < int32_t(syms.size()); ++i) push_pair(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.left];
    if (l.id != c.left_id || l.next < 0 || syms[l.next].id != c.right_id) continue;  // stale
    Sym& r = syms[l.next];
    l.id = c.result;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    r.id = -1;
    push_pair(l.prev);
    push_pair(c.left);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

std::string BpeTokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || id >= n_vocab()) fail("tokenizer: token id ", id, " out of range [0, ", n_vocab(), ")");
  const TokenType type = spec_.types.empty() ? TokenType::Normal : spec_.types[id];
  if (type == TokenType::Control || type == TokenType::Unused) return "";  // e.g. GGUF [PADn] fillers
  if (type == TokenType::UserDefined) return spec_.tokens[id];  // added tokens are stored as raw text
  return byte_level::decode(spec_.tokens[id]);
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) out += token_to_piece(id);
  return out;
}

}  // namespace mf
