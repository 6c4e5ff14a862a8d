// MO-CTE's cluster-oriented routing: a layer's hidden features, projected on their top
// singular vectors (randomised SVD), are clustered with k-means when they show cluster
// structure; each cluster owns a contiguous group of experts, and a token is routed among its
// cluster's experts only. Unseen tokens take the nearest centroid in the projected space,
// which is an argmax of affine functions of the hidden state (see ClusterGate), so the engine
// runs it as one more small matmul before the router.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace mf {

// Top `rank` right singular vectors of x [N, E] (rows centred by the caller): V [E, rank], by a
// randomised range finder with `oversample` extra columns and 2 power iterations (Halko et al.).
torch::Tensor randomized_top_singular_vectors(const torch::Tensor& x, int rank, int oversample, uint64_t seed);

struct KMeansResult {
  torch::Tensor centroids;  // [C, r]
  torch::Tensor labels;     // [N] int64
  double inertia = 0;       // sum of squared distances to the assigned centroid
};
// k-means++ seeding then Lloyd iterations on z [N, r]; deterministic for a seed.
KMeansResult kmeans(const torch::Tensor& z, int clusters, int iterations, uint64_t seed);

// Mean silhouette of a clustering (in [-1, 1]; above ~0.25 the clusters are apart), exact on z.
double silhouette(const torch::Tensor& z, const torch::Tensor& labels, int clusters);

// The silhouette the same k-means finds on structureless data of z's shape: a Gaussian sample
// with z's mean and covariance (k-means splits even one blob, and a 2-way split of a blob
// scores about 0.35-0.4). Cluster structure is a silhouette clearly above this.
double null_silhouette(const torch::Tensor& z, int clusters, int iterations, uint64_t seed);

// The nearest-centroid rule as affine functions of the hidden state h [N, E]:
// cluster(h) = argmax_c (weight[c] . h + bias[c]), equal to argmin_c |(h - mean) V - centroid_c|^2.
struct ClusterGate {
  torch::Tensor weight;  // [C, E]
  torch::Tensor bias;    // [C]
  torch::Tensor assign(const torch::Tensor& h) const;  // [N] int64
};
ClusterGate cluster_gate(const torch::Tensor& mean, const torch::Tensor& V, const torch::Tensor& centroids);

}  // namespace mf
