// moe/expert_checkpoint.h: a saved expert comes back with the same bytes, neurons and names,
// and a file under another key, for another model or damaged is refused (then rebuilt).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "expert_stage_fixture.h"
#include "moe/expert_checkpoint.h"
#include "moe/expert_layout.h"
#include "test_util.h"

namespace mf {
namespace {

// An expert of `m` keeping neurons {0, 2, 4, ...} of every layer, with a bias on layer 1.
Expert sample_expert(const Model& m) {
  ExpertSpec spec;
  spec.name = "math/1", spec.domain = 1, spec.subdomain = 1;
  Expert e = start_expert(m, spec);
  const int64_t E = m.hp.n_embd;
  for (int il = 0; il < m.hp.n_layer; ++il) {
    std::vector<int32_t> kept;
    for (int32_t j = 0; j < m.hp.n_ff; j += 2) kept.push_back(j);
    CompactFfn f;
    f.down = test::random_floats(size_t(E) * kept.size(), 20 + il);
    if (il == 1) f.bias = test::random_floats(size_t(E), 30);
    lay_out_layer(m.w.layers[size_t(il)], f, kept, il, e);
  }
  return e;
}

bool same_view(const TensorView& a, const TensorView& b) {
  if (!a.data || !b.data) return !a.data && !b.data;
  return a.dtype == b.dtype && a.shape == b.shape && a.nbytes() == b.nbytes() &&
         std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

TEST(ExpertCheckpoint, RoundTripsAnExpert) {
  auto m = test::tiny_ffn_model(DType::Q8_0);
  const Expert e = sample_expert(*m);
  const ExpertCheckpoint cp(test::temp_dir() + "/cp", "key 1");
  ASSERT_TRUE(cp.save(*m, 3, e));
  std::string why;
  std::optional<Expert> back = cp.load(*m, 3, &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(back->name, "math/1");
  EXPECT_EQ(back->domain, 1);
  EXPECT_EQ(back->subdomain, 1);
  EXPECT_EQ(back->neurons, e.neurons);
  ASSERT_EQ(back->layers.size(), e.layers.size());
  for (size_t il = 0; il < e.layers.size(); ++il) {
    const LayerWeights &a = e.layers[il], &b = back->layers[il];
    EXPECT_TRUE(same_view(a.ffn_gate, b.ffn_gate) && same_view(a.ffn_up, b.ffn_up) && same_view(a.ffn_down, b.ffn_down) &&
                same_view(a.ffn_down_b, b.ffn_down_b))
        << "layer " << il;
    EXPECT_EQ(b.wq.data, m->w.layers[il].wq.data) << "attention stays the dense model's";
  }
  EXPECT_FALSE(back->layers[0].ffn_down_b.data);
  // Moved, the views still point into its own buffers.
  Expert moved = std::move(*back);
  EXPECT_TRUE(same_view(moved.layers[1].ffn_down, e.layers[1].ffn_down));
}

TEST(ExpertCheckpoint, RefusesWhatItCannotUse) {
  auto m = test::tiny_ffn_model(DType::Q8_0);
  const std::string dir = test::temp_dir() + "/cp";
  const ExpertCheckpoint cp(dir, "key 1");
  std::string why;
  EXPECT_FALSE(cp.load(*m, 0, &why));
  EXPECT_NE(why.find("none saved"), std::string::npos) << why;

  ASSERT_TRUE(cp.save(*m, 0, sample_expert(*m)));
  EXPECT_FALSE(ExpertCheckpoint(dir, "key 2").load(*m, 0, &why)) << "another key";
  EXPECT_NE(why.find("another command"), std::string::npos) << why;

  auto f32 = test::tiny_ffn_model(DType::F32);  // same shapes, another weight type
  EXPECT_FALSE(cp.load(*f32, 0, &why));
  EXPECT_NE(why.find("does not fit"), std::string::npos) << why;
  auto deeper = test::tiny_ffn_model(DType::Q8_0, 3);
  EXPECT_FALSE(cp.load(*deeper, 0, &why));
  EXPECT_NE(why.find("layer count"), std::string::npos) << why;
  auto narrower = test::tiny_ffn_model(DType::Q8_0, 2, 32, 32);  // neuron ids past its n_ff
  EXPECT_FALSE(cp.load(*narrower, 0, &why));
  EXPECT_NE(why.find("neuron id outside"), std::string::npos) << why;

  for (uintmax_t size : {uintmax_t(0), uintmax_t(40), std::filesystem::file_size(cp.path(0)) - 1}) {
    ASSERT_TRUE(cp.save(*m, 0, sample_expert(*m)));
    std::filesystem::resize_file(cp.path(0), size);
    EXPECT_FALSE(cp.load(*m, 0, &why)) << "cut to " << size << " bytes";
  }
  cp.remove();
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(ExpertCheckpoint, AFailedSaveSaysWhy) {
  auto m = test::tiny_ffn_model();
  const std::string file = test::temp_dir() + "/not-a-dir";
  test::write_file(file, "x");
  std::string why;
  EXPECT_FALSE(ExpertCheckpoint(file + "/cp", "k").save(*m, 0, sample_expert(*m), &why));
  EXPECT_NE(why.find("not-a-dir"), std::string::npos) << why;
}

}  // namespace
}  // namespace mf
