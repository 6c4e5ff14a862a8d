#include "calib/kmeans.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <random>

namespace mf {

namespace {
double sq_dist(const float* a, const float* b, int64_t dim) {
  double s = 0;
  for (int64_t i = 0; i < dim; ++i) {
    double d = double(a[i]) - b[i];
    s += d * d;
  }
  return s;
}
}  // namespace

int nearest_centroid(const float* x, const float* centroids, int k, int64_t dim) {
  int best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (int c = 0; c < k; ++c) {
    double d = sq_dist(x, centroids + c * dim, dim);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

KMeansResult kmeans(const std::vector<float>& pts, int64_t n, int64_t dim, int k, uint64_t seed,
                    const std::vector<double>& weights, int max_iter) {
  assert(k >= 1 && k <= n && int64_t(pts.size()) == n * dim);
  auto w = [&](int64_t i) { return weights.empty() ? 1.0 : weights[i]; };
  std::mt19937_64 rng(seed);
  KMeansResult r;
  r.centroids.resize(size_t(k) * dim);
  // k-means++: each next seed is drawn with probability proportional to weight * distance^2.
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  int64_t first = int64_t(uni(rng) * double(n)) % n;
  std::copy_n(&pts[first * dim], dim, &r.centroids[0]);
  std::vector<double> d2(n, std::numeric_limits<double>::infinity());
  for (int c = 1; c < k; ++c) {
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      d2[i] = std::min(d2[i], sq_dist(&pts[i * dim], &r.centroids[(c - 1) * dim], dim));
      total += w(i) * d2[i];
    }
    int64_t pick = n - 1;
    if (total > 0) {
      double target = uni(rng) * total, acc = 0;
      for (int64_t i = 0; i < n; ++i) {
        acc += w(i) * d2[i];
        if (acc >= target) { pick = i; break; }
      }
    } else {
      pick = c % n;  // all points coincide with the seeds so far
    }
    std::copy_n(&pts[pick * dim], dim, &r.centroids[c * dim]);
  }
  r.assignment.assign(n, 0);
  for (int it = 0; it < max_iter; ++it) {
    bool changed = it == 0;
    for (int64_t i = 0; i < n; ++i) {
      int a = nearest_centroid(&pts[i * dim], r.centroids.data(), k, dim);
      if (a != r.assignment[i]) changed = true;
      r.assignment[i] = a;
    }
    if (!changed) break;
    std::vector<double> sum(size_t(k) * dim, 0.0), mass(k, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      int a = r.assignment[i];
      mass[a] += w(i);
      for (int64_t j = 0; j < dim; ++j) sum[a * dim + j] += w(i) * pts[i * dim + j];
    }
    for (int c = 0; c < k; ++c)
      if (mass[c] > 0)  // an emptied cluster keeps its previous centroid
        for (int64_t j = 0; j < dim; ++j) r.centroids[c * dim + j] = float(sum[c * dim + j] / mass[c]);
  }
  return r;
}

}  // namespace mf
