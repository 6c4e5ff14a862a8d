// Least-squares re-fit of ffn_down on an expert's kept neurons (a tuning-free, closed-form
// compensation for structured pruning, in the spirit of OBS/SparseGPT's weight update).
//
// The dense FFN outputs y = W a (W = ffn_down [n_embd, n_ff], a = activations [n_ff]). An
// expert keeps the neurons S. Over the calibration tokens, choose W' [n_embd, |S|] and a bias b
// minimising E || W a - (W' a_S + b) ||^2. With G = E[a a^T] and m = E[a], the normal equations
// are  [W' b] [[G_SS, m_S], [m_S^T, 1]] = W [G_:S, m]. Keeping b alone (W' = W_:S) gives the
// mean compensation b = W_:R m_R over the removed neurons R, which this generalises.
#pragma once
#include <cstdint>
#include <vector>

namespace mf {

struct DownRefit {
  std::vector<float> down;  // [n_embd, k] row-major
  std::vector<float> bias;  // [n_embd]
  // Output energy the fit reproduces, 2 tr(X C^T) - tr(X A X^T) per calibration token (A without
  // the ridge): the fit's error is E||W a||^2 (ffn_output_energy) minus this.
  double explained = 0;
};

// E||W a||^2 per calibration token: the dense FFN's output energy (tr(W G W^T) / tokens).
double ffn_output_energy(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram, int64_t tokens);

// w: dense ffn_down [n_embd, n_ff] row-major; gram: sum over `tokens` of a a^T [n_ff, n_ff];
// sum: sum of a [n_ff]; kept: k neuron ids. `damp` adds damp * mean(diag(G_SS)) to G_SS's
// diagonal (ridge), which keeps the solve well-posed when kept neurons are collinear.
// Throws mf::Error on mismatched sizes or no tokens.
DownRefit refit_down(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                     const float* sum, int64_t tokens, const std::vector<int32_t>& kept, double damp);

// refit_down for many kept sets of one layer (the candidate widths): W [G, m] per token
// [n_embd, n_ff+1] is computed once, each fit then only slices its columns. The pointers must
// outlive the object. refit_down is DownRefitter(...).fit(kept, damp).
class DownRefitter {
 public:
  // Throws mf::Error on mismatched sizes or no tokens.
  DownRefitter(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram, const float* sum,
               int64_t tokens);
  DownRefit fit(const std::vector<int32_t>& kept, double damp) const;

 private:
  int64_t n_embd_, n_ff_, tokens_;
  const float *gram_, *sum_;
  std::vector<double> wgm_;  // [n_embd, n_ff+1] row-major: W G / tokens, then W m / tokens
};

// The same fit toward any per-token targets y [n_embd]: minimises E || y - (W' a_S + b) ||^2.
// gram and sum are the sums of a a^T and a; out_cross is the sum of y a^T [n_embd, n_ff] and
// out_sum that of y [n_embd]. refit_down is the case y = W a. (A sequential re-fit: a from the
// expert's own pruned earlier layers, y the dense model's FFN output, or what the residual stream
// needs, on the same tokens.) `explained` is then relative to E||y||^2.
DownRefit refit_down_to(int64_t n_embd, int64_t n_ff, const float* gram, const float* sum, const float* out_cross,
                        const float* out_sum, int64_t tokens, const std::vector<int32_t>& kept, double damp);

// Structured Optimal Brain Surgeon selection of the k neurons to keep: starting from all,
// repeatedly remove the neuron whose removal, with the others re-fitted as above, adds the
// least output error, ||W'_:j||^2 / [A^-1]_jj (A = [[G, m], [m^T, 1]] with the same ridge),
// then update W' and A^-1 as if re-fitted. `forced` neurons are never removed.
// Returns k ascending ids.
std::vector<int32_t> obs_select(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                                const float* sum, int64_t tokens, int64_t k, double damp,
                                const std::vector<int32_t>& forced = {});

// The same greedy removal, as the ids in the order removed, until k neurons are left.
std::vector<int32_t> obs_removal_order(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                                       const float* sum, int64_t tokens, int64_t k, double damp,
                                       const std::vector<int32_t>& forced = {});

// The same greedy removal toward any targets y (as refit_down_to): it starts from the fit of y
// on all neurons and the bias instead of from the dense weights.
std::vector<int32_t> obs_removal_order_to(int64_t n_embd, int64_t n_ff, const float* gram, const float* sum,
                                          const float* out_cross, const float* out_sum, int64_t tokens, int64_t k,
                                          double damp, const std::vector<int32_t>& forced = {});

// Neuron scores [n_ff] from the full removal order (down to one neuron): the i-th removed
// scores i, forced and last survivors n_ff. The top k by score are exactly obs_select's k,
// for every k, so the sets are nested and layer widths can be chosen on them.
std::vector<double> obs_scores(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                               const float* sum, int64_t tokens, double damp, const std::vector<int32_t>& forced = {});

}  // namespace mf
