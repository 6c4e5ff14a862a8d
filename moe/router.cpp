#include "moe/router.h"

#include <algorithm>
#include <cmath>

#include "calib/kmeans.h"
#include "core/error.h"
#include "formats/gguf.h"

namespace mf {

std::vector<float> Router::domain_probs(const float* x) const {
  const int D = n_domain();
  std::vector<float> z(dim);  // [dim] standardised features
  for (int64_t j = 0; j < dim; ++j) z[j] = (x[j] - mean[j]) * inv_std[j];
  std::vector<double> logit(D);
  double mx = -1e300;
  for (int d = 0; d < D; ++d) {
    double s = bias[d];
    for (int64_t j = 0; j < dim; ++j) s += double(weight[d * dim + j]) * z[j];
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

Router train_router(const CalibStats& stats, int K, const RouterTrainOptions& opts,
                    std::vector<std::vector<int>>* micro_to_sub) {
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
  std::vector<float> X(size_t(n) * dim);  // [n, dim]
  std::vector<int> y(n);
  std::vector<double> sample_w(n);
  int64_t row = 0;
  for (int d = 0; d < D; ++d) {
    const DomainStats& ds = stats.domains[d];
    for (int64_t i = 0; i < ds.n_samples(); ++i, ++row) {
      for (int64_t j = 0; j < dim; ++j) X[row * dim + j] = (ds.embeddings[i * dim + j] - r.mean[j]) * r.inv_std[j];
      y[row] = d;
      sample_w[row] = double(n) / (double(D) * double(ds.n_samples()));  // balanced classes
    }
  }

  // Full-batch Adam on the weighted cross-entropy with L2 on the weights.
  const size_t P = size_t(D) * dim + D;
  std::vector<double> theta(P, 0.0), m1(P, 0.0), m2(P, 0.0), grad(P);
  std::vector<double> logit(D);
  for (int it = 1; it <= opts.iterations; ++it) {
    std::fill(grad.begin(), grad.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const float* x = &X[i * dim];
      double mx = -1e300;
      for (int d = 0; d < D; ++d) {
        double s = theta[size_t(D) * dim + d];
        for (int64_t j = 0; j < dim; ++j) s += theta[d * dim + j] * x[j];
        logit[d] = s;
        mx = std::max(mx, s);
      }
      double sum = 0;
      for (double& l : logit) sum += (l = std::exp(l - mx));
      for (int d = 0; d < D; ++d) {
        double g = sample_w[i] * (logit[d] / sum - (d == y[i] ? 1.0 : 0.0)) / double(n);
        for (int64_t j = 0; j < dim; ++j) grad[d * dim + j] += g * x[j];
        grad[size_t(D) * dim + d] += g;
      }
    }
    for (size_t p = 0; p < size_t(D) * dim; ++p) grad[p] += opts.l2 * theta[p];
    const double b1 = 0.9, b2 = 0.999;
    for (size_t p = 0; p < P; ++p) {
      m1[p] = b1 * m1[p] + (1 - b1) * grad[p];
      m2[p] = b2 * m2[p] + (1 - b2) * grad[p] * grad[p];
      double mh = m1[p] / (1 - std::pow(b1, it)), vh = m2[p] / (1 - std::pow(b2, it));
      theta[p] -= opts.learning_rate * mh / (std::sqrt(vh) + 1e-8);
    }
  }
  r.weight.assign(theta.begin(), theta.begin() + size_t(D) * dim);
  r.bias.assign(theta.begin() + size_t(D) * dim, theta.end());
  return r;
}

void Router::write(GgufWriter& w) const {
  w.set_array("moeforge.moe.router.domains", GgufType::STRING, nlohmann::json(domains));
  w.set_array("moeforge.moe.router.embed_layers", GgufType::I32, nlohmann::json(embed_layers));
  w.set_u32("moeforge.moe.router.subdomains", uint32_t(subdomains));
  w.set_f32("moeforge.moe.router.threshold", threshold);
  const int64_t D = n_domain();
  w.add_tensor("moe.router.mean", make_view(DType::F32, {dim}, mean.data()));
  w.add_tensor("moe.router.inv_std", make_view(DType::F32, {dim}, inv_std.data()));
  w.add_tensor("moe.router.weight", make_view(DType::F32, {D, dim}, weight.data()));
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
  const GgufTensorInfo* m = g.find_tensor("moe.router.mean");
  if (!m) fail(label, ": missing tensor 'moe.router.mean'");
  r.dim = m->view.numel();
  const int64_t D = r.n_domain();
  auto get = [&](const char* name, int64_t numel) {
    const GgufTensorInfo* t = g.find_tensor(name);
    if (!t) fail(label, ": missing tensor '", name, "'");
    if (t->view.dtype != DType::F32 || t->view.numel() != numel)
      fail(label, ": tensor '", name, "' has shape ", t->view.shape_str(), ", expected ", numel, " f32 values");
    const float* p = t->view.f32();
    return std::vector<float>(p, p + numel);
  };
  r.mean = get("moe.router.mean", r.dim);
  r.inv_std = get("moe.router.inv_std", r.dim);
  r.weight = get("moe.router.weight", D * r.dim);
  r.bias = get("moe.router.bias", D);
  r.centroids = get("moe.router.centroids", D * r.subdomains * r.dim);
  return r;
}

}  // namespace mf
