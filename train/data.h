// Token streams per domain and deterministic batch sampling: the batch of (step, micro)
// depends only on the seed, so a resumed run sees exactly the data it would have seen.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace mf {

struct DomainTokens {
  std::string name;
  std::vector<int32_t> ids;
};

// Reads and tokenizes each domain's file (must be non-empty UTF-8 with at least
// seq_len + 2 tokens); an EOS token ends each file.
std::vector<DomainTokens> tokenize_domains(const std::map<std::string, std::string>& files, const Tokenizer& tok,
                                           int seq_len);

// [batch, seq_len + 1] int64 windows; domains drawn uniformly, offsets uniformly.
torch::Tensor sample_batch(const std::vector<DomainTokens>& domains, int batch, int seq_len, uint64_t seed,
                           uint64_t stream);
// [batch, seq_len + 1] windows from one domain.
torch::Tensor sample_domain_batch(const DomainTokens& d, int batch, int seq_len, uint64_t seed, uint64_t stream);

}  // namespace mf
