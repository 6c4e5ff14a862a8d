// Deterministic K-means (k-means++ seeding, Lloyd iterations) on weighted points.
#pragma once
#include <cstdint>
#include <vector>

namespace mf {

struct KMeansResult {
  std::vector<float> centroids;  // [k, dim]
  std::vector<int> assignment;   // [n] index of the nearest centroid
};

// points: [n, dim]; weights: [n] (empty: all 1). Requires 1 <= k <= n. Same seed, same result.
KMeansResult kmeans(const std::vector<float>& points, int64_t n, int64_t dim, int k, uint64_t seed,
                    const std::vector<double>& weights = {}, int max_iter = 50);
int nearest_centroid(const float* x, const float* centroids, int k, int64_t dim);

}  // namespace mf
