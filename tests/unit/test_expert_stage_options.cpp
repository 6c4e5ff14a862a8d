// BuildOptions -> each stage's options (moe/expert_builder.h's stage_options): the one place
// the public, CLI-facing options are read.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace mf
