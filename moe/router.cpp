#include "moe/router.h"

#include <algorithm>
#include <cmath>

#include "calib/kmeans.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "moe/router_fit.h"

namespace mf {

std::vector<float> Router::domain_probs(const float* x) const {
  const int D = n_domain();
  std::vector<float> z(dim);  // [dim] standardised features
  for (int64_t j = 0; j < dim; ++j) z[j] = (x[j] - mean[j]) * inv_std[j];
  std::vector<float> h(n_hidden);  // [n_hidden] ReLU(hidden_weight z + hidden_bias)
  for (int64_t k = 0; k < n_hidden; ++k) {
    double s = hidden_bias[k];
    for (int64_t j = 0; j < dim; ++j) s += double(hidden_weight[k * dim + j]) * z[j];
    h[k] = float(std::max(s, 0.0));
  }
  const std::vector<float>& in = n_hidden > 0 ? h : z;  // [n_in] the output layer's input
  const int64_t n_in = int64_t(in.size());
  std::vector<double> logit(D);
  double mx = -1e300;
  for (int d = 0; d < D; ++d) {
    double s = bias[d];
    for (int64_t j = 0; j < n_in; ++j) s += double(weight[d * n_in + j]) * in[j];
    logit[d] = s;
    mx = std::max(mx, s);
  }
  double sum = 0;
  for (double& l : logit) sum += (l = std::exp(l - mx));
  std::vector<float> p(D);
  for (int d = 0; d < D; ++d) p[d] = float(logit[d] / sum);
  return p;
}

RouteDecision Router::route(const float* x) const {
  RouteDecision r;
  r.probs = domain_probs(x);
  r.domain = int(std::max_element(r.probs.begin(), r.probs.end()) - r.probs.begin());
  r.confidence = r.probs[r.domain];
  r.dense = r.confidence < threshold;
  r.subdomain = nearest_centroid(x, centroids.data() + size_t(r.domain) * subdomains * dim, subdomains, dim);
  return r;
}

std::vector<char> holdout_mask(int64_t n, double fraction, int blocks) {
  if (!(fraction >= 0 && fraction < 1)) fail("router hold-out fraction must be in [0, 1), got ", fraction);
  if (blocks < 1) fail("router hold-out blocks must be >= 1, got ", blocks);
  std::vector<char> held(n, 0);  // [n]
  const int64_t n_hold = fraction > 0 && n >= 2 ? std::clamp<int64_t>(std::llround(fraction * double(n)), 1, n - 1) : 0;
  const int64_t nb = std::min<int64_t>(blocks, n_hold);
  for (int64_t b = 0; b < nb; ++b) {  // block b: centred in the b-th of nb equal segments
    const int64_t len = n_hold / nb + (b < n_hold % nb), centre = (2 * b + 1) * n / (2 * nb);
    const int64_t start = std::clamp<int64_t>(centre - len / 2, b * n / nb, (b + 1) * n / nb - len);
    std::fill(held.begin() + start, held.begin() + start + len, 1);
  }
  return held;
}

Router train_router(const CalibStats& stats, int K, const RouterTrainOptions& opts,
                    std::vector<std::vector<int>>* micro_to_sub, RouterTrainReport* report) {
  Router r;
  const int D = int(stats.domains.size());
  const int64_t dim = stats.dim;
  r.dim = dim;
  r.embed_layers = stats.embed_layers;
  r.subdomains = K;
  for (const DomainStats& d : stats.domains) r.domains.push_back(d.name);
  if (K < 1) fail("sub-domains must be at least 1");

  // Sub-domains: weighted K-means over each domain's non-empty micro-cluster centroids.
  r.centroids.assign(size_t(D) * K * dim, 0.0f);
  if (micro_to_sub) micro_to_sub->assign(D, {});
  for (int d = 0; d < D; ++d) {
    const DomainStats& ds = stats.domains[d];
    std::vector<float> pts;
    std::vector<double> w;
    std::vector<int> ids;
    for (size_t c = 0; c < ds.clusters.size(); ++c)
      if (ds.clusters[c].n_samples > 0) {
        pts.insert(pts.end(), ds.clusters[c].centroid.begin(), ds.clusters[c].centroid.end());
        w.push_back(double(ds.clusters[c].n_samples));
        ids.push_back(int(c));
      }
    if (int(ids.size()) < K)
      fail("domain '", ds.name, "' has ", ids.size(), " non-empty calibration clusters (", ds.n_tokens(),
           " tokens), too few for ", K, " sub-domains: calibrate with more text or ask for fewer sub-domains");
    KMeansResult km = kmeans(pts, int64_t(ids.size()), dim, K, opts.seed + d, w);
    std::copy(km.centroids.begin(), km.centroids.end(), r.centroids.begin() + size_t(d) * K * dim);
    if (micro_to_sub) {
      (*micro_to_sub)[d].assign(ds.clusters.size(), -1);
      for (size_t i = 0; i < ids.size(); ++i) (*micro_to_sub)[d][ids[i]] = km.assignment[i];
    }
  }

  // Standardised features.
  int64_t n = 0;
  for (const DomainStats& d : stats.domains) n += d.n_samples();
  std::vector<double> mu(dim, 0.0), var(dim, 0.0);
  for (const DomainStats& d : stats.domains)
    for (int64_t i = 0; i < d.n_samples(); ++i)
      for (int64_t j = 0; j < dim; ++j) mu[j] += d.embeddings[i * dim + j];
  for (double& m : mu) m /= double(n);
  for (const DomainStats& d : stats.domains)
    for (int64_t i = 0; i < d.n_samples(); ++i)
      for (int64_t j = 0; j < dim; ++j) {
        double c = d.embeddings[i * dim + j] - mu[j];
        var[j] += c * c;
      }
  r.mean.resize(dim);
  r.inv_std.resize(dim);
  for (int64_t j = 0; j < dim; ++j) {
    r.mean[j] = float(mu[j]);
    r.inv_std[j] = float(1.0 / std::sqrt(var[j] / double(n) + 1e-8));
  }
  // Features, classes, weights and the split (hold-out blocks per domain, see holdout_mask).
  std::vector<float> X(size_t(n) * dim);  // [n, dim]
  std::vector<int> y(n);                  // [n]
  std::vector<float> sample_w(n);         // [n]
  std::vector<char> held(n, 0);           // [n]
  ClassifierData data;
  int64_t row = 0;
  for (int d = 0; d < D; ++d) {
    const DomainStats& ds = stats.domains[d];
    const int64_t n_d = ds.n_samples();
    if (n_d == 0) fail("domain '", ds.name, "' has no calibration samples");
    const std::vector<char> mask = holdout_mask(n_d, opts.holdout_fraction, opts.holdout_blocks);  // [n_d]
    const int64_t n_hold = std::count(mask.begin(), mask.end(), 1);
    std::copy(mask.begin(), mask.end(), held.begin() + row);
    for (int64_t i = 0; i < n_d; ++i, ++row) {
      for (int64_t j = 0; j < dim; ++j) X[row * dim + j] = (ds.embeddings[i * dim + j] - r.mean[j]) * r.inv_std[j];
      y[row] = d;
      // Balanced classes within each split: weight = split size / (D * the domain's samples
      // in the split); the split size multiplies in below, once both are known.
      const int64_t n_split = held[row] ? n_hold : n_d - n_hold;
      sample_w[row] = float(1.0 / (double(D) * double(n_split)));
      (held[row] ? data.holdout : data.train).push_back(row);
    }
  }
  for (int64_t i = 0; i < n; ++i) sample_w[i] *= float(held[i] ? data.holdout.size() : data.train.size());
  data.x = X.data(), data.y = y.data(), data.w = sample_w.data();
  data.n = n, data.dim = dim, data.n_class = D;
  fit_domain_classifier(data, opts, r, report);
  return r;
}

void Router::write(GgufWriter& w) const {
  w.set_array("moeforge.moe.router.domains", GgufType::STRING, nlohmann::json(domains));
  w.set_array("moeforge.moe.router.embed_layers", GgufType::I32, nlohmann::json(embed_layers));
  w.set_u32("moeforge.moe.router.subdomains", uint32_t(subdomains));
  w.set_u32("moeforge.moe.router.hidden", uint32_t(n_hidden));
  w.set_f32("moeforge.moe.router.threshold", threshold);
  const int64_t D = n_domain();
  w.add_tensor("moe.router.mean", make_view(DType::F32, {dim}, mean.data()));
  w.add_tensor("moe.router.inv_std", make_view(DType::F32, {dim}, inv_std.data()));
  if (n_hidden > 0) {
    w.add_tensor("moe.router.hidden.weight", make_view(DType::F32, {n_hidden, dim}, hidden_weight.data()));
    w.add_tensor("moe.router.hidden.bias", make_view(DType::F32, {n_hidden}, hidden_bias.data()));
  }
  w.add_tensor("moe.router.weight", make_view(DType::F32, {D, n_hidden > 0 ? n_hidden : dim}, weight.data()));
  w.add_tensor("moe.router.bias", make_view(DType::F32, {D}, bias.data()));
  w.add_tensor("moe.router.centroids", make_view(DType::F32, {D * subdomains, dim}, centroids.data()));
}

Router Router::read(const GgufFile& g, const std::string& label) {
  Router r;
  for (const auto& d : g.get_array("moeforge.moe.router.domains")) r.domains.push_back(d.get<std::string>());
  if (r.domains.empty()) fail(label, ": the router has no domains");
  for (const auto& l : g.get_array("moeforge.moe.router.embed_layers")) r.embed_layers.push_back(l.get<int>());
  r.subdomains = int(g.get_int("moeforge.moe.router.subdomains"));
  r.threshold = float(g.get_float("moeforge.moe.router.threshold", 0.5));
  if (r.subdomains < 1) fail(label, ": bad sub-domain count ", r.subdomains);
  r.n_hidden = g.get_int("moeforge.moe.router.hidden");
  if (r.n_hidden < 0 || r.n_hidden > (1 << 20)) fail(label, ": bad router hidden size ", r.n_hidden);
  const GgufTensorInfo* m = g.find_tensor("moe.router.mean");
  if (!m) fail(label, ": missing tensor 'moe.router.mean'");
  r.dim = m->view.numel();
  const int64_t D = r.n_domain();
  // Every tensor must have exactly the expected shape (a transposed or truncated one would
  // still have the right number of values).
  auto get = [&](const char* name, std::vector<int64_t> shape) {
    const GgufTensorInfo* t = g.find_tensor(name);
    if (!t) fail(label, ": missing tensor '", name, "'");
    bool same = t->view.dtype == DType::F32 && t->view.n_dims == int(shape.size());
    for (size_t i = 0; same && i < shape.size(); ++i) same = t->view.shape[i] == shape[i];
    if (!same) {
      std::string want;
      for (int64_t x : shape) want += (want.empty() ? "" : ", ") + std::to_string(x);
      fail(label, ": router tensor '", name, "' is ", dtype_name(t->view.dtype), " ", t->view.shape_str(), ", expected f32 [", want, "]");
    }
    const float* p = t->view.f32();
    return std::vector<float>(p, p + t->view.numel());
  };
  r.mean = get("moe.router.mean", {r.dim});
  r.inv_std = get("moe.router.inv_std", {r.dim});
  if (r.n_hidden > 0) {
    r.hidden_weight = get("moe.router.hidden.weight", {r.n_hidden, r.dim});
    r.hidden_bias = get("moe.router.hidden.bias", {r.n_hidden});
  } else if (g.find_tensor("moe.router.hidden.weight") || g.find_tensor("moe.router.hidden.bias")) {
    fail(label, ": router tensors 'moe.router.hidden.*' present but moeforge.moe.router.hidden is 0");
  }
  r.weight = get("moe.router.weight", {D, r.n_hidden > 0 ? r.n_hidden : r.dim});
  r.bias = get("moe.router.bias", {D});
  r.centroids = get("moe.router.centroids", {D * r.subdomains, r.dim});
  return r;
}

}  // namespace mf
