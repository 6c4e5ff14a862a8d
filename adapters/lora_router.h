// Routers over a LoRA library, behind one interface: per token and per linear map, which
// adapters update it and with what weight.
// - FixedRouter: the same adapters for every token (one named adapter, a user's list, or the
//   uniform merge of all of them: weight 1/N each, which equals averaging the adapters' B A).
// - ArrowRouter (Ostapenko et al. 2024, training-free): each adapter's prototype for a map is
//   the top right singular vector v of its B A; a token x scores |v . x| for each adapter that
//   has the map, takes the top k and weights them by a softmax over those k scores.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "adapters/lora_adapter.h"
#include "ops/lora.h"

namespace mf {

class LoraRouter {
 public:
  virtual ~LoraRouter() = default;
  virtual std::string name() const = 0;
  // Appends, for x [n, n_in] entering map `target` (index into kLoraTargets) of layer il, the
  // chosen (row, adapter, weight) terms sorted by row. scratch: the caller's buffer (routers are
  // shared by slots and threads, so they keep no state of their own). pool: for scoring many
  // rows; nullptr inside a caller's parallel job (single-threaded scoring).
  virtual void route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
                     std::vector<float>& scratch, ThreadPool* pool) const = 0;
};

class FixedRouter : public LoraRouter {
 public:
  // weights [n_adapter]: each adapter's weight (0: unused).
  explicit FixedRouter(std::vector<float> weights, std::string name) : w_(std::move(weights)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  // Terms for every adapter of nonzero weight; the caller skips adapters without the map.
  void route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
             std::vector<float>& scratch, ThreadPool* pool) const override;
  const std::vector<float>& weights() const { return w_; }

 private:
  std::vector<float> w_;
  std::string name_;
};

class ArrowRouter : public LoraRouter {
 public:
  // Computes the prototypes of every adapter's maps (an SVD of each B A through its rank-r factors).
  ArrowRouter(const std::vector<LoraAdapter>& library, int top_k, float temperature = 1.0f);
  std::string name() const override { return "arrow"; }
  void route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
             std::vector<float>& scratch, ThreadPool* pool) const override;
  // The prototype of adapter a for (il, target), [n_in], or nullptr if it lacks the map.
  const float* prototype(int il, int target, int a) const;

 private:
  // The prototypes of one map: a matrix [n_present, n_in] (scored by one matmul) and which
  // adapter each row belongs to.
  struct Prototypes {
    std::vector<float> rows;
    std::vector<int> adapter;
  };
  int n_adapter_, top_k_;
  float temperature_;
  std::vector<Prototypes> proto_;  // [n_layer * kNumLoraTargets]
};

// Top right singular vector of B A (unit norm, sign fixed so its largest entry is positive),
// [n_in]. Exposed for its test.
std::vector<float> lora_top_right_singular_vector(const LoraModule& m);

}  // namespace mf
