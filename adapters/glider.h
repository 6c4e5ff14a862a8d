// GLIDER's global router (Li et al. 2024): each adapter carries a description of its task
// (description.txt beside it: given by the user, or written by the base model from a few
// examples with `moeforge lora describe`). The base model embeds descriptions and queries alike:
// the mean over the text's tokens of its final hidden states (after the output norm), L2-
// normalised. A query's prior over the library is softmax(cos(query, description) / T); the
// routers take alpha * log prior as a per-adapter bias (adapters/lora_router.h).
#pragma once
#include <span>
#include <string>
#include <vector>

#include "adapters/lora_library.h"

namespace mf {

// [n_embd], unit norm. Runs the base model alone (no adapter) on at most max_tokens tokens.
std::vector<float> embed_tokens(const Model& model, ThreadPool& pool, std::span<const int32_t> tokens, int max_tokens = 256);
std::vector<float> embed_text(const Model& model, ThreadPool& pool, const std::string& text, int max_tokens = 256);

struct GlobalIndex {
  std::vector<std::vector<float>> descriptions;  // [n_adapter][n_embd]
  float temperature = 0.1f;
  float alpha = 1.0f;
};

// Embeds every adapter's description. Throws mf::Error naming an adapter without one.
GlobalIndex build_global_index(const Model& model, ThreadPool& pool, const LoraLibrary& library, float temperature,
                               float alpha);
// The prior's log probabilities [n_adapter] for a query embedding.
std::vector<float> global_log_prior(const GlobalIndex& index, const std::vector<float>& query);
// alpha * log prior: the bias a RoutedLora takes (set_prior).
std::vector<float> global_bias(const GlobalIndex& index, const std::vector<float>& query);

// Sets the prior of a sequence that starts with `prompt` (the base model embeds it) when the
// update's router takes one; does nothing otherwise. Throws mf::Error if the router needs a
// prior but the update has no global index.
void set_query(RoutedLora& lora, const Model& model, ThreadPool& pool, std::span<const int32_t> prompt);
// A new update on lora's library, router and index, with the prior of a sequence that starts
// with `prompt`: for sequences that run side by side, each with its own prior (evaluation).
std::shared_ptr<RoutedLora> with_query(const RoutedLora& lora, const Model& model, ThreadPool& pool,
                                       std::span<const int32_t> prompt);

// A task description written by the base model from a few examples of the task (greedy, at
// most max_tokens, first line). Uses the model's chat template when it has one.
std::string describe_task(const Model& model, ThreadPool& pool, const std::vector<std::string>& examples, int max_tokens = 48);

}  // namespace mf
