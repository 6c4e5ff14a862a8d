#include "train/trainability.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

namespace mf {

double jacobian_top_singular_value(ExpertMlp& expert, const torch::Tensor& x, int iterations, uint64_t seed) {
  std::vector<torch::Tensor> params = expert->parameters();
  at::Generator gen = at::detail::createCPUGenerator(seed);  // leaves the training RNG alone
  std::vector<torch::Tensor> v;  // a unit vector in parameter space, one piece per parameter
  for (const torch::Tensor& p : params) v.push_back(torch::randn(p.sizes(), gen, p.options()));
  auto normalise = [](std::vector<torch::Tensor>& t) {
    double sq = 0;
    for (const torch::Tensor& a : t) sq += a.pow(2).sum().item<double>();
    const double n = std::sqrt(sq);
    for (torch::Tensor& a : t) a = a / n;
    return n;
  };
  normalise(v);
  torch::AutoGradMode grad_on(true);
  auto xd = x.detach();
  auto y = expert(xd);                                           // [n, E]
  auto u = torch::zeros_like(y, torch::requires_grad());         // dummy: J^T u is linear in u
  auto jt_u = torch::autograd::grad({y}, params, {u}, /*retain_graph=*/true, /*create_graph=*/true);  // J^T u
  double sigma = 0;
  for (int it = 0; it < iterations; ++it) {
    // J v = d(u . J v)/du = d((J^T u) . v)/du
    torch::Tensor dot = torch::zeros({});
    for (size_t i = 0; i < params.size(); ++i) dot = dot + (jt_u[i] * v[i]).sum();
    auto jv = torch::autograd::grad({dot}, {u}, {}, /*retain_graph=*/true)[0];  // [n, E]
    sigma = jv.norm().item<double>();                                             // ||J v|| with ||v|| = 1
    // v <- J^T (J v), normalised
    auto next = torch::autograd::grad({y}, params, {jv}, /*retain_graph=*/true);
    v.assign(next.begin(), next.end());
    for (torch::Tensor& a : v) a = a.detach();
    if (normalise(v) == 0) return 0.0;
  }
  return sigma;
}

ExpertFreezer::ExpertFreezer(int n_layers, int n_expert, double threshold, int window)
    : threshold_(threshold), window_(window),
      below_(size_t(n_layers), std::vector<int>(size_t(n_expert), 0)),
      first_(size_t(n_layers), std::vector<double>(size_t(n_expert), 0.0)),
      frozen_(size_t(n_layers), std::vector<bool>(size_t(n_expert), false)) {}

bool ExpertFreezer::observe(int layer, int expert, double sigma) {
  if (frozen(layer, expert)) return false;
  double& peak = first_[size_t(layer)][size_t(expert)];
  peak = std::max(peak, sigma);
  int& below = below_[size_t(layer)][size_t(expert)];
  below = sigma < threshold_ * peak ? below + 1 : 0;
  if (below < window_) return false;
  frozen_[size_t(layer)][size_t(expert)] = true;
  return true;
}

void ExpertFreezer::set_state(int layer, int expert, int state, double reference) {
  frozen_[size_t(layer)][size_t(expert)] = state < 0;
  below_[size_t(layer)][size_t(expert)] = state < 0 ? 0 : state;
  first_[size_t(layer)][size_t(expert)] = reference;
}

int ExpertFreezer::n_frozen() const {
  int n = 0;
  for (auto& l : frozen_)
    for (bool f : l) n += f;
  return n;
}

void freeze_expert(ExpertMlp& expert) {
  for (torch::Tensor& p : expert->parameters()) {
    p.set_requires_grad(false);
    p.mutable_grad() = torch::Tensor();
  }
}

}  // namespace mf
