#include "train/data.h"

#include <random>

#include "core/error.h"
#include "core/text_file.h"

namespace mf {

std::vector<DomainTokens> tokenize_domains(const std::map<std::string, std::string>& files, const Tokenizer& tok,
                                           int seq_len) {
  std::vector<DomainTokens> out;
  for (auto& [name, path] : files) {
    DomainTokens d{name, tok.encode(read_text_file(path), /*add_special=*/false)};
    if (tok.spec().eos_id >= 0) d.ids.push_back(tok.spec().eos_id);
    if (int64_t(d.ids.size()) < seq_len + 2)
      fail(path, ": domain '", name, "' has only ", d.ids.size(), " tokens, fewer than seq_len + 2 = ", seq_len + 2);
    out.push_back(std::move(d));
  }
  return out;
}

namespace {

uint64_t mix(uint64_t seed, uint64_t stream) {  // splitmix64 of the pair
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + stream + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void fill_row(const DomainTokens& d, int seq_len, std::mt19937_64& rng, int64_t* row) {
  uint64_t span = d.ids.size() - size_t(seq_len) - 1;
  uint64_t off = rng() % span;
  for (int t = 0; t <= seq_len; ++t) row[t] = d.ids[off + t];
}

}  // namespace

torch::Tensor sample_batch(const std::vector<DomainTokens>& domains, int batch, int seq_len, uint64_t seed,
                           uint64_t stream) {
  std::mt19937_64 rng(mix(seed, stream));
  auto t = torch::empty({batch, seq_len + 1}, torch::kInt64);  // [B, T+1]
  for (int b = 0; b < batch; ++b) fill_row(domains[rng() % domains.size()], seq_len, rng, t[b].data_ptr<int64_t>());
  return t;
}

torch::Tensor sample_domain_batch(const DomainTokens& d, int batch, int seq_len, uint64_t seed, uint64_t stream) {
  std::mt19937_64 rng(mix(seed, stream));
  auto t = torch::empty({batch, seq_len + 1}, torch::kInt64);  // [B, T+1]
  for (int b = 0; b < batch; ++b) fill_row(d, seq_len, rng, t[b].data_ptr<int64_t>());
  return t;
}

}  // namespace mf
