#include "train/cluster_routing.h"

#include <ATen/CPUGeneratorImpl.h>

#include <limits>

namespace mf {

torch::Tensor randomized_top_singular_vectors(const torch::Tensor& x, int rank, int oversample, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto xd = x.detach().to(torch::kFloat64);                                       // [N, E]
  const int64_t k = std::min<int64_t>(rank + oversample, std::min(xd.size(0), xd.size(1)));
  auto omega = torch::randn({xd.size(1), k}, gen, xd.options());                  // [E, k]
  auto q = std::get<0>(torch::linalg_qr(torch::matmul(xd, omega)));               // [N, k] range of x
  for (int it = 0; it < 2; ++it) {                                                // power iterations sharpen the spectrum
    auto w = std::get<0>(torch::linalg_qr(torch::matmul(xd.t(), q)));             // [E, k]
    q = std::get<0>(torch::linalg_qr(torch::matmul(xd, w)));                      // [N, k]
  }
  auto b = torch::matmul(q.t(), xd);                                              // [k, E]
  auto vh = std::get<2>(torch::linalg_svd(b, /*full_matrices=*/false));           // [k, E]
  return vh.narrow(0, 0, std::min<int64_t>(rank, vh.size(0))).t().to(x.scalar_type());  // [E, rank]
}

KMeansResult kmeans(const torch::Tensor& z, int clusters, int iterations, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto zd = z.detach().to(torch::kFloat64);  // [N, r]
  const int64_t n = zd.size(0);
  // k-means++: each next seed drawn with probability proportional to its squared distance.
  std::vector<int64_t> picks = {torch::randint(n, {1}, gen, torch::kInt64).item<int64_t>()};
  auto d2 = (zd - zd[picks[0]]).pow(2).sum(1);  // [N]
  while (int(picks.size()) < clusters) {
    const double total = d2.sum().item<double>();
    int64_t next = 0;
    if (total > 0) next = torch::multinomial(d2 / total, 1, false, gen).item<int64_t>();
    picks.push_back(next);
    d2 = torch::minimum(d2, (zd - zd[next]).pow(2).sum(1));
  }
  auto centroids = zd.index_select(0, torch::tensor(picks));  // [C, r]
  torch::Tensor labels;
  for (int it = 0; it <= iterations; ++it) {
    labels = torch::cdist(zd, centroids).argmin(1);  // [N]
    if (it == iterations) break;
    for (int c = 0; c < clusters; ++c) {
      auto members = (labels == c).nonzero().squeeze(1);
      if (members.numel() > 0) centroids[c] = zd.index_select(0, members).mean(0);  // empty: keep the old centroid
    }
  }
  KMeansResult r;
  r.centroids = centroids.to(z.scalar_type());
  r.labels = labels;
  r.inertia = (zd - centroids.index_select(0, labels)).pow(2).sum().item<double>();
  return r;
}

double silhouette(const torch::Tensor& z, const torch::Tensor& labels, int clusters) {
  auto zd = z.detach().to(torch::kFloat64);
  auto d = torch::cdist(zd, zd);  // [N, N]
  const int64_t n = zd.size(0);
  auto mean_to = torch::zeros({n, clusters}, zd.options());  // mean distance of each point to each cluster
  auto sizes = torch::zeros({clusters}, zd.options());
  for (int c = 0; c < clusters; ++c) {
    auto mask = (labels == c).to(zd.scalar_type());  // [N]
    sizes[c] = mask.sum();
    mean_to.index_put_({torch::indexing::Slice(), c}, torch::matmul(d, mask));
  }
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t own = labels[i].item<int64_t>();
    const double own_size = sizes[own].item<double>();
    if (own_size <= 1) continue;  // a singleton's silhouette is 0
    const double a = mean_to[i][own].item<double>() / (own_size - 1);
    double b = std::numeric_limits<double>::infinity();
    for (int c = 0; c < clusters; ++c)
      if (c != own && sizes[c].item<double>() > 0) b = std::min(b, mean_to[i][c].item<double>() / sizes[c].item<double>());
    if (std::isfinite(b)) total += (b - a) / std::max(a, b);
  }
  return total / double(n);
}

double null_silhouette(const torch::Tensor& z, int clusters, int iterations, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto zd = z.detach().to(torch::kFloat64);
  const int64_t n = zd.size(0), r = zd.size(1);
  auto centred = zd - zd.mean(0);
  auto cov = torch::matmul(centred.t(), centred) / double(std::max<int64_t>(n - 1, 1));  // [r, r]
  auto l = torch::linalg_cholesky(cov + 1e-9 * torch::eye(r, zd.options()));          // [r, r]
  auto gauss = torch::matmul(torch::randn({n, r}, gen, zd.options()), l.t()) + zd.mean(0);  // [n, r]
  return silhouette(gauss, kmeans(gauss, clusters, iterations, seed + 1).labels, clusters);
}

ClusterGate cluster_gate(const torch::Tensor& mean, const torch::Tensor& V, const torch::Tensor& centroids) {
  // |(h - m) V - c|^2 = |(h - m) V|^2 - 2 c . (h - m) V + |c|^2: the first term is the same for
  // every cluster, so the argmin is the argmax of 2 (V c) . h - 2 c . (m V) - |c|^2.
  ClusterGate g;
  g.weight = 2.0 * torch::matmul(centroids, V.t());                                         // [C, E]
  g.bias = -2.0 * torch::matmul(centroids, torch::matmul(mean, V)) - centroids.pow(2).sum(1);  // [C]
  return g;
}

torch::Tensor ClusterGate::assign(const torch::Tensor& h) const {
  return (torch::matmul(h, weight.t()) + bias).argmax(1);  // [N]
}

}  // namespace mf
