// Routers over a LoRA library, behind one interface: per token and per linear map, which
// adapters update it and with what weight.
// - FixedRouter: the same adapters for every token (one named adapter, a user's list, or the
//   uniform merge of all of them: weight 1/N each, which equals averaging the adapters' B A).
// - ArrowRouter (Ostapenko et al. 2024, training-free): each adapter's prototype for a map is
//   the top right singular vector v of its B A; a token x scores |v . x| for each adapter that
//   has the map, takes the top k and weights them by a softmax over those k scores.
// - GlobalRouter (GLIDER's global router alone): the same top k adapters for every token of a
//   sequence, from a per-sequence prior over the library (adapters/glider.h).
// GLIDER combines the two: Arrow's token scores plus alpha times the sequence's log prior, so
// p(adapter | token) is proportional to exp(|v . x|) * prior^alpha (alpha = 0: Arrow alone).
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
  // rows; nullptr inside a caller's parallel job (single-threaded scoring). bias: the sequence's
  // per-adapter score offsets [n_adapter] (alpha * log prior), or nullptr.
  virtual void route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
                     std::vector<float>& scratch, ThreadPool* pool, const float* bias) const = 0;
  // Whether the router needs a sequence prior (set_prior on the RoutedLora) before it runs.
  virtual bool needs_prior() const { return false; }
};

class FixedRouter : public LoraRouter {
 public:
  // weights [n_adapter]: each adapter's weight (0: unused).
  explicit FixedRouter(std::vector<float> weights, std::string name) : w_(std::move(weights)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  // Terms for every adapter of nonzero weight; the caller skips adapters without the map.
  void route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
             std::vector<float>& scratch, ThreadPool* pool, const float* bias) const override;
  const std::vector<float>& weights() const { return w_; }

 private:
  std::vector<float> w_;
  std::string name_;
};

class ArrowRouter : public LoraRouter {
 public:
  // Computes the prototypes of every adapter's maps (an SVD of each B A through its rank-r factors).
  // glider: the name under which it takes a sequence prior (GLIDER's local + global routing).
  ArrowRouter(const std::vector<LoraAdapter>& library, int top_k, float temperature = 1.0f, bool glider = false);
  std::string name() const override { return glider_ ? "glider" : "arrow"; }
  bool needs_prior() const override { return glider_; }
  void route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
             std::vector<float>& scratch, ThreadPool* pool, const float* bias) const override;
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
  bool glider_;
  std::vector<Prototypes> proto_;  // [n_layer * kNumLoraTargets]
};

// PHATGOOSE (Muqeeth et al. 2024): each adapter's gate vectors, trained after the adapter with
// the adapter frozen. A token x scores z(g) . z(x) / sqrt(n_in) per adapter with a gate for the
// map, z() standardising to zero mean and unit variance; top k, softmax over their scores.
class GateRouter : public LoraRouter {
 public:
  // Throws mf::Error if no adapter of the library has gates. glider: takes a sequence prior
  // (GLIDER with learned local gates, as in the paper, instead of Arrow).
  GateRouter(const std::vector<LoraAdapter>& library, int top_k, bool glider = false);
  std::string name() const override { return glider_ ? "glider-gates" : "gates"; }
  bool needs_prior() const override { return glider_; }
  void route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
             std::vector<float>& scratch, ThreadPool* pool, const float* bias) const override;

 private:
  struct Gates {
    std::vector<float> rows;  // [n_present, n_in] standardised and divided by sqrt(n_in)
    std::vector<int> adapter;
  };
  int top_k_;
  bool glider_;
  std::vector<Gates> gates_;  // [n_layer * kNumLoraTargets]
};

class GlobalRouter : public LoraRouter {
 public:
  explicit GlobalRouter(int n_adapter, int top_k) : n_adapter_(n_adapter), top_k_(top_k) {}
  std::string name() const override { return "global"; }
  bool needs_prior() const override { return true; }
  // Every row: the top k adapters by bias, weighted by a softmax over their biases.
  void route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
             std::vector<float>& scratch, ThreadPool* pool, const float* bias) const override;

 private:
  int n_adapter_, top_k_;
};

// Top right singular vector of B A (unit norm, sign fixed so its largest entry is positive),
// [n_in]. Exposed for its test.
std::vector<float> lora_top_right_singular_vector(const LoraModule& m);

}  // namespace mf
