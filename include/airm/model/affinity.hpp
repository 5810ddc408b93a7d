// Semantic affinity for the Affinity Empowered Encoder (AIRM Sec. 4.1, 4.3
// "Loss", 5.4): the affinity head phi on transformer attention maps, the
// L1-distance affinity of CNN features, the ground-truth affinity labels and
// the affinity loss.
//
// Two layouts of pairs are used:
// - dense: [B, N, N] over all pairs of grid cells, N = h*w in raster order
//   (cell i = (i / w, i % w)); used for the transformer head, whose grid is
//   small (7x7 at 224x224 crops for the MiT last stage);
// - local: [B, K, h, w], entry (k, y, x) is the pair ((y, x), (y+dy_k, x+dx_k))
//   for the K offsets of neighbour_offsets(radius); used for the CNN affinity,
//   whose grid is large (28x28 at output stride 8), so only the pairs the
//   loss needs are computed. The offsets are the "forward" half of the
//   window, so each unordered pair appears once; since affinities and labels
//   are symmetric, the loss over the local layout equals the loss over the
//   dense layout (where each unordered pair appears twice, in the same class).
//
// Pairs counted by the loss ("search mask"): cells i != j whose distance in
// GRID CELLS is <= radius (default 14, the paper's value), Chebyshev distance
// max(|dy|, |dx|) by default (a square local window), Euclidean on request.
// At 224x224 crops the MiT last-stage grid is 7x7: the largest Chebyshev
// distance is 6, so every pair counts and the radius has no effect; at 512x512
// crops (16x16 grid) only pairs more than 14 cells apart are left out. For the
// R50 encoder at output stride 8 a 224x224 crop gives a 28x28 grid, on which
// radius 14 is a real restriction (a 29x29 window).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace airm {

// How the distance between two grid cells is measured for the radius.
enum class PairDistance {
  kChebyshev,  // max(|dy|, |dx|) <= radius: a square window
  kEuclidean,  // dy^2 + dx^2 <= radius^2: a disc
};

// The paper's search-mask radius (Sec. 4.3, Table 6).
constexpr int64_t kDefaultAffinityRadius = 14;

// ---------------------------------------------------------------------------
// Affinity head phi (AIRM Eq. 4, after AFA, Ru et al. CVPR 2022).

struct AffinityHeadOptions {
  // in_channels = number of attention maps stacked = blocks x heads of the
  // last MiT stage (MiT-b1: 2 x 8 = 16).
  explicit AffinityHeadOptions(int64_t in_channels) : in_channels_(in_channels) {}
  TORCH_ARG(int64_t, in_channels);
  // 0 (default): one Linear(in_channels -> 1), the paper's "MLP layer" (as
  // AFA's 1x1 convolution). > 0: Linear(in -> hidden) + ReLU + Linear(hidden -> 1).
  TORCH_ARG(int64_t, hidden_channels) = 0;

 public:
  // Throws airm::Error naming the offending field.
  void validate() const;
};

// Stacks the attention maps over blocks and heads into [B, L*heads, N, N],
// symmetrises them (A + A^T) and maps the L*heads values of every pair to
// one affinity logit with an MLP applied on the channel dimension (Linear
// layers on the last dimension after a permute). The output is symmetric
// by construction. sigmoid(logits) is the predicted affinity.
struct AffinityHeadImpl : torch::nn::Module {
  explicit AffinityHeadImpl(AffinityHeadOptions options);
  // list of [B, heads_l, N, N] (sum of heads_l = in_channels) -> logits [B, N, N]
  torch::Tensor forward(const std::vector<torch::Tensor>& attentions);
  // [B, in_channels, N, N] -> logits [B, N, N]
  torch::Tensor forward_stacked(const torch::Tensor& attention);

  const AffinityHeadOptions& options() const { return options_; }

  torch::nn::Linear hidden_{nullptr};  // only when hidden_channels > 0
  torch::nn::Linear proj_{nullptr};

 private:
  AffinityHeadOptions options_;
};
TORCH_MODULE(AffinityHead);

// ---------------------------------------------------------------------------
// Pairs within the radius.

// The offsets (dy, dx) != (0, 0) within `radius` (grid cells) with dy > 0, or
// dy == 0 and dx > 0: one of the two orderings of every pair. Sorted by
// (dy, dx). Throws airm::Error for a negative radius.
std::vector<std::pair<int64_t, int64_t>> neighbour_offsets(int64_t radius,
                                                           PairDistance distance = PairDistance::kChebyshev);

// Picks the local layout out of a dense one: [B, N, N] (N = h*w) -> [B, K, h, w]
// with K = neighbour_offsets(radius).size(); entries whose neighbour falls
// outside the grid are 0.
torch::Tensor gather_local_pairs(const torch::Tensor& dense, int64_t h, int64_t w, int64_t radius,
                                 PairDistance distance = PairDistance::kChebyshev);

// ---------------------------------------------------------------------------
// CNN affinity (AIRM Sec. 5.4 after AffinityNet, Ahn & Kwak CVPR 2018).

// a_ij = exp(-mean_c |f_i - f_j|) for the pairs of the local layout:
// features [B, C, h, w] -> [B, K, h, w] in (0, 1], 0 where the neighbour is
// outside the grid. The mean (not the sum) over channels keeps the scale
// independent of C. Memory is O(B*C*h*w + B*K*h*w): a custom backward walks
// the offsets again instead of keeping the per-offset differences.
torch::Tensor cnn_affinity(const torch::Tensor& features, int64_t radius = kDefaultAffinityRadius,
                           PairDistance distance = PairDistance::kChebyshev);

// ---------------------------------------------------------------------------
// Labels (AIRM Sec. 4.1) and loss (Eq. 8-10, AFA's form).

// The ground truth resized to the grid: gt [B, 1, H, W] with values in [0, 1]
// -> [B, h, w] of 0/1 (gt's floating dtype, float for integer gt). Each cell
// is the area average of the pixels it covers (adaptive average pooling,
// which also handles sizes that do not divide), foreground when > 0.5
// (a tie counts as background).
torch::Tensor mask_to_grid(const torch::Tensor& gt, int64_t h, int64_t w);

struct AffinityLabels {
  torch::Tensor labels;  // float 1 where the two cells have the same class, 0 otherwise
  torch::Tensor valid;   // bool: the pair is counted by the loss
};

// Dense layout: labels [B, N, N], valid [B, N, N] (N = h*w): true for i != j
// within the radius.
AffinityLabels affinity_labels(const torch::Tensor& gt, int64_t h, int64_t w, int64_t radius = kDefaultAffinityRadius,
                               PairDistance distance = PairDistance::kChebyshev);

// Local layout: labels [B, K, h, w], valid [B, K, h, w]: true where the
// neighbour is inside the grid (the offsets are already within the radius).
AffinityLabels local_affinity_labels(const torch::Tensor& gt, int64_t h, int64_t w,
                                     int64_t radius = kDefaultAffinityRadius,
                                     PairDistance distance = PairDistance::kChebyshev);

// 1/2 * mean over valid positive pairs (label 1) of (1 - p)
// + 1/2 * mean over valid negative pairs (label 0) of p,
// with p = sigmoid(logits). The two sets are normalised separately; an empty
// set contributes 0. Any layout: logits, labels and valid have one shape.
// Returns a scalar.
torch::Tensor affinity_loss_from_logits(const torch::Tensor& logits, const torch::Tensor& labels,
                                        const torch::Tensor& valid);

// Same with affinities p in [0, 1] given directly (the CNN affinity).
torch::Tensor affinity_loss_from_probabilities(const torch::Tensor& probabilities, const torch::Tensor& labels,
                                               const torch::Tensor& valid);

}  // namespace airm
