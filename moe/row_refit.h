// Least-squares re-fit of an expert's kept ffn_up rows, and optionally its gate rows, after
// down_refit has re-fitted ffn_down (the two alternate). With the gate rows G [k, n_embd],
// ffn_down D [n_embd, k] and its bias b fixed, a gated FFN's output on input x [n_embd],
// D (act(G x) ⊙ (U x)) + b (act = SiLU, or GELU-tanh for Gemma), is linear in the up rows
// U [k, n_embd]. So the U minimising E || y - D (act(G x) ⊙ (U x)) - b ||^2 over calibration
// tokens (x, y) solves a linear least-squares problem, as down's does. The gate enters through
// act; with it, one Gauss-Newton step linearises d a_i = act'(g_i.x) (u_i.x) (dg_i.x) +
// act(g_i.x) (du_i.x) and halves the step until the true error falls.
// The problem has k x n_embd unknowns per matrix, coupled through every token: too many for
// the normal matrix, so it is solved by conjugate gradients on the normal equations without
// forming them (docs/moe.md, "Re-fitting gate and up rows").
#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "model/arch.h"
#include "moe/down_refit.h"

namespace mf {

struct RowRefit {
  std::vector<float> gate, up;  // [k, n_embd] row-major each
  double error_before = 0;      // E || y - prediction ||^2 per token, with the starting rows
  double error_after = 0;       // the same with the re-fitted rows
  int iterations = 0;           // conjugate-gradient iterations
  float step = 0;               // the part of the (Gauss-Newton) step taken; 0 if none lowered the error
};

struct RowRefitOptions {
  bool gate = false;  // also the gate rows (a Gauss-Newton step), not only the up rows (exact)
  FfnAct act = FfnAct::SiLU;  // the model's gate activation
  // Ridge: damp * mean(diagonal of each matrix's normal block) * ||change||^2, which keeps the
  // rows near the dense ones where the tokens say little.
  double damp = 0.01;
  int max_iterations = 30;
  double tolerance = 1e-3;  // stop when the normal equations' residual falls below this times its start
};

// x: inputs [tokens, n_embd] (the normalised FFN inputs); y: targets [tokens, n_embd];
// gate, up: the kept rows [k, n_embd]; down [n_embd, k]; bias [n_embd]. The token products
// run on `pool` when it is given. Throws mf::Error on mismatched sizes or no tokens.
RowRefit refit_rows(const std::vector<float>& x, const std::vector<float>& y, int64_t tokens, int64_t n_embd,
                    const std::vector<float>& gate, const std::vector<float>& up, const std::vector<float>& down,
                    const std::vector<float>& bias, int64_t k, const RowRefitOptions& opts, ThreadPool* pool = nullptr);

// refit_down_to on the same samples, for the kept rows gate and up [k, n_embd] as they are now:
// the moments of a = act(G x) ⊙ (U x) [k] against y.
DownRefit refit_down_on_samples(const std::vector<float>& x, const std::vector<float>& y, int64_t tokens,
                                int64_t n_embd, const std::vector<float>& gate, const std::vector<float>& up, int64_t k,
                                double damp, FfnAct act = FfnAct::SiLU);

}  // namespace mf
