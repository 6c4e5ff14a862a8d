// BuildOptions -> each stage's options (moe/expert_builder.h's stage_options): the one place
// the public, CLI-facing options are read.
#include <gtest/gtest.h>

#include <algorithm>

#include "moe/expert_builder.h"

namespace mf {
namespace {

TEST(ExpertStageOptions, DataFreeScoresGetNoCompensationAndObsNeedsLeastSquares) {
  BuildOptions b;
  b.compensation = Compensation::LeastSquares;
  b.obs_select = true;
  b.density = 0.3;
  b.refit_damp = 0.02;
  b.shared_fraction = 0.1;
  b.seed = 9;
  ExpertStageOptions s = stage_options(b);
  EXPECT_EQ(s.compensate.method, Compensation::LeastSquares);
  EXPECT_TRUE(s.select.obs);
  EXPECT_TRUE(s.select.centered);
  EXPECT_EQ(s.select.density, 0.3);
  EXPECT_EQ(s.select.damp, 0.02);
  EXPECT_EQ(s.compensate.damp, 0.02);
  EXPECT_EQ(s.select.shared_fraction, 0.1);
  EXPECT_EQ(s.select.seed, 9u);
  b.compensation = Compensation::Mean;  // OBS ranks only for least squares
  s = stage_options(b);
  EXPECT_FALSE(s.select.obs);
  EXPECT_TRUE(s.select.centered);
  b.compensation = Compensation::None;
  EXPECT_FALSE(stage_options(b).select.centered);
  for (NeuronScore score : {NeuronScore::Magnitude, NeuronScore::Random}) {
    b.score = score;
    b.compensation = Compensation::LeastSquares;
    s = stage_options(b);
    EXPECT_EQ(s.select.score, score);
    EXPECT_EQ(s.compensate.method, Compensation::None);
    EXPECT_FALSE(s.select.obs);
    EXPECT_FALSE(s.select.centered);
  }
}

TEST(ExpertStageOptions, SequentialAndLayoutOptionsCarryOver) {
  BuildOptions b;
  b.compensation = Compensation::LeastSquares;
  b.widths = LayerWidths::ByError;
  b.sequential = true;
  b.sequential_tokens = 777;
  b.refit_target = RefitTarget::Ffn;
  b.refit_rows = RefitRows::GateUp;
  b.refit_rounds = 3;
  b.row_refit.max_iterations = 5;
  const ExpertStageOptions s = stage_options(b);
  EXPECT_EQ(s.compensate.widths, LayerWidths::ByError);
  EXPECT_TRUE(s.compensate.sequential.on);
  EXPECT_EQ(s.compensate.sequential.tokens, 777);
  EXPECT_EQ(s.compensate.sequential.target, RefitTarget::Ffn);
  EXPECT_EQ(s.compensate.sequential.rows, RefitRows::GateUp);
  EXPECT_EQ(s.compensate.sequential.rounds, 3);
  EXPECT_EQ(s.compensate.sequential.row_refit.max_iterations, 5);
  EXPECT_FALSE(s.layout.dowp);
  b = BuildOptions{};
  b.mode = "dowp";
  b.density = 0.4;
  b.dowp_scale = DowpScale::None;
  const ExpertStageOptions d = stage_options(b);
  EXPECT_TRUE(d.layout.dowp);
  EXPECT_EQ(d.layout.density, 0.4);
  EXPECT_EQ(d.layout.scale, DowpScale::None);
}

TEST(ExpertBuildCost, RowRefitsWeighLayersByWidthOthersCountLayersEqually) {
  CompensateOptions c;
  const std::vector<int64_t> widths = {256, 1536, 256, 1536};  // [n_layer]
  std::vector<double> done = build_cost_done(widths, 576, 1536, c);  // no sequential re-fit
  ASSERT_EQ(done.size(), widths.size());
  for (size_t l = 0; l < done.size(); ++l) EXPECT_DOUBLE_EQ(done[l], double(l + 1) / 4.0);
  c.sequential.on = true;
  c.sequential.rows = RefitRows::Down;  // moments over the dense width: layers cost the same
  EXPECT_EQ(build_cost_done(widths, 576, 1536, c), done);
  c.sequential.rows = RefitRows::GateUp;
  done = build_cost_done(widths, 576, 1536, c);
  const double narrow = done[0], wide = done[1] - done[0];
  EXPECT_NEAR(done[2] - done[1], narrow, 1e-12);
  EXPECT_GT(wide / narrow, 2.5);  // whole layers took ~110 s against ~30 s for narrow ones on SmolLM2
  EXPECT_LT(wide / narrow, 5.0);
  EXPECT_EQ(done.back(), 1.0);
  EXPECT_TRUE(std::is_sorted(done.begin(), done.end()));
}

}  // namespace
}  // namespace mf
