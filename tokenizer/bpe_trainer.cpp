#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_set>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/split_regexes.h"

namespace mf {

namespace {

using Pair = uint64_t;  // (left << 32) | right
Pair make_pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t left_of(Pair p) { return int32_t(p >> 32); }
int32_t right_of(Pair p) { return int32_t(p & 0xffffffffu); }

struct Word {
  std::vector<int32_t> syms;
  int64_t count;
};

}  // namespace

BpeTrainer::BpeTrainer(BpeTrainerOptions opts) : opts_(std::move(opts)) {
  if (opts_.special_tokens.empty()) fail("bpe trainer: at least one special token (BOS/EOS) is required");
  if (opts_.vocab_size < int(opts_.special_tokens.size()) + 256)
    fail("bpe trainer: vocab_size ", opts_.vocab_size, " is below the byte alphabet plus special tokens");
  pre_tokenizer_from_name(opts_.pre);  // validates the name
}

void BpeTrainer::add_text(std::string_view text) {
  spans_.clear();
  pretokenize(text, pre_tokenizer_from_name(opts_.pre), spans_);
  for (auto [b, e] : spans_) ++word_counts_[std::string(text.substr(b, e - b))];
}

TokenizerSpec BpeTrainer::train(const std::function<void(int, int)>& on_progress) {
  if (word_counts_.empty()) fail("bpe trainer: no text to train on");
  TokenizerSpec spec;
  spec.model = "gpt2";
  spec.pre = opts_.pre;
  for (auto& s : opts_.special_tokens) {
    spec.tokens.push_back(s);
    spec.types.push_back(TokenType::Control);
  }
  const int32_t first_byte = int32_t(spec.tokens.size());
  for (int b = 0; b < 256; ++b) {
    spec.tokens.push_back(byte_level::byte_to_piece(uint8_t(b)));
    spec.types.push_back(TokenType::Normal);
  }

  // Words in a deterministic order (sorted), as byte symbols.
  std::vector<std::pair<std::string, int64_t>> sorted(word_counts_.begin(), word_counts_.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (auto& [w, c] : sorted) {
    Word word{{}, c};
    for (unsigned char ch : w) word.syms.push_back(first_byte + ch);
    words.push_back(std::move(word));
  }
  sorted.clear();

  std::unordered_map<Pair, int64_t> counts;
  std::unordered_map<Pair, std::vector<int32_t>> where;  // words that may hold the pair
  for (int32_t wi = 0; wi < int32_t(words.size()); ++wi) {
    auto& s = words[wi].syms;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      Pair p = make_pair_key(s[i], s[i + 1]);
      counts[p] += words[wi].count;
      auto& v = where[p];
      if (v.empty() || v.back() != wi) v.push_back(wi);
    }
  }
  // Max-heap on (count, then smaller pair first for determinism); stale entries are skipped.
  using Entry = std::pair<int64_t, Pair>;
  auto cmp = [](const Entry& a, const Entry& b) { return a.first < b.first || (a.first == b.first && a.second > b.second); };
  std::priority_queue<Entry, std::vector<Entry>, decltype(cmp)> heap(cmp);
  for (auto& [p, c] : counts) heap.push({c, p});

  const int wanted = opts_.vocab_size - int(spec.tokens.size());
  std::vector<int32_t> stamp(words.size(), -1);
  std::unordered_set<Pair> touched;
  while (int(spec.merges.size()) < wanted && !heap.empty()) {
    auto [c, p] = heap.top();
    heap.pop();
    auto it = counts.find(p);
    if (it == counts.end() || it->second != c) continue;  // stale
    if (c < opts_.min_frequency) break;
    const int32_t a = left_of(p), b = right_of(p);
    const int32_t merged = int32_t(spec.tokens.size());
    spec.tokens.push_back(spec.tokens[a] + spec.tokens[b]);
    spec.types.push_back(TokenType::Normal);
    spec.merges.push_back(spec.tokens[a] + " " + spec.tokens[b]);
    const int merge_index = int(spec.merges.size());

    touched.clear();
    std::vector<int32_t> holders = std::move(where[p]);
    where.erase(p);
    for (int32_t wi : holders) {
      if (stamp[wi] == merge_index) continue;
      stamp[wi] = merge_index;
      Word& w = words[wi];
      auto& s = w.syms;
      bool found = false;
      for (size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] == a && s[i + 1] == b) found = true;
      if (!found) continue;
      // Remove the word's old pairs, merge left to right, add the new pairs.
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        Pair q = make_pair_key(s[i], s[i + 1]);
        if ((counts[q] -= w.count) == 0) counts.erase(q);
        touched.insert(q);
      }
      std::vector<int32_t> out;
      out.reserve(s.size());
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          out.push_back(merged);
          ++i;
        } else {
          out.push_back(s[i]);
        }
      }
      s.swap(out);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        Pair q = make_pair_key(s[i], s[i + 1]);
        counts[q] += w.count;
        touched.insert(q);
        if (s[i] == merged || s[i + 1] == merged) {
          auto& v = where[q];
          if (v.empty() || v.back() != wi) v.push_back(wi);
        }
      }
    }
    counts.erase(p);
    for (Pair q : touched) {
      auto ct = counts.find(q);
      if (ct != counts.end() && q != p) heap.push({ct->second, q});
    }
    if (on_progress && (merge_index % 256 == 0 || merge_index == wanted)) on_progress(merge_index, wanted);
  }
  spec.bos_id = spec.eos_id = 0;
  spec.add_bos = true;
  validate_tokenizer_spec(spec);
  return spec;
}

void write_hf_tokenizer(const TokenizerSpec& spec, const std::string& dir) {
  using json = nlohmann::ordered_json;
  if (spec.model != "gpt2") fail("write_hf_tokenizer: only byte-level BPE vocabularies can be written");
  const char* regex = spec.pre == "qwen2" ? kQwen2Regex : spec.pre == "llama-bpe" ? kLlama3Regex : spec.pre == "gpt-2" ? kGpt2Regex : nullptr;
  const bool smollm = spec.pre == "smollm";  // digits split one by one, then ByteLevel's own GPT-2 regex
  if (!regex && !smollm) fail("write_hf_tokenizer: cannot write pre-tokenizer '", spec.pre, "'");
  json added = json::array(), vocab = json::object(), merges = json::array();
  for (int32_t id = 0; id < int32_t(spec.tokens.size()); ++id) {
    TokenType t = spec.types.empty() ? TokenType::Normal : spec.types[id];
    if (t == TokenType::Control || t == TokenType::UserDefined)
      added.push_back({{"id", id}, {"content", spec.tokens[id]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", t == TokenType::Control}});
    vocab[spec.tokens[id]] = id;
  }
  for (auto& m : spec.merges) {
    size_t sp = m.find(' ');
    merges.push_back({m.substr(0, sp), m.substr(sp + 1)});
  }
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  json post = nullptr;
  if (spec.add_bos) {
    const std::string& bos = spec.tokens.at(spec.bos_id);
    post = {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                      {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{bos, {{"id", bos}, {"ids", {spec.bos_id}}, {"tokens", {bos}}}}}}};
  }
  json tok = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", nullptr},
              {"pre_tokenizer",
               {{"type", "Sequence"},
                {"pretokenizers",
                 smollm ? json::array({json{{"type", "Digits"}, {"individual_digits", true}},
                                       json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}})
                        : json::array({json{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                                       byte_level})}}},
              {"post_processor", post},
              {"decoder", byte_level},
              {"model",
               {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                {"vocab", vocab}, {"merges", merges}}}};
  json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
              {"bos_token", spec.bos_id >= 0 ? json(spec.tokens[spec.bos_id]) : json(nullptr)},
              {"eos_token", spec.eos_id >= 0 ? json(spec.tokens[spec.eos_id]) : json(nullptr)},
              {"model_max_length", 1 << 20}};
  if (!spec.chat_template.empty()) cfg["chat_template"] = spec.chat_template;
  for (auto& [name, j] : {std::pair{"tokenizer.json", &tok}, std::pair{"tokenizer_config.json", &cfg}}) {
    std::string path = dir + "/" + name, tmp = path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary);
      f << j->dump(1);
      if (!f) fail(path, ": write failed");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(path, ": cannot rename temporary into place");
  }
}

}  // namespace mf
