// MoDE models in the engine, CLI and server, on a fixture written here without the trainer
// (models/default as the backbone, expert layers perturbed copies of its layers, random gates):
// the backbone alone is the original model exactly, a forced expert and the gate differ from
// it, slots with different choices batch together as they run alone, GGUF round-trips, and
// bad choices or mismatched files fail with the problem named.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "model/session.h"
#include "model/throughput.h"
#include "test_serve_util.h"
#include "test_util.h"

namespace mf {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// DIR/mode: models/default (4 layers) with experts code and math, 2 blocks of 1 layer each:
// expert layer (j, b) is backbone layer 2b + 1 with its weights scaled by 1.1 + 0.1 j; gate
// weights N(0, 0.05), biases N(0, 0.5).
std::string write_mode_fixture(const std::string& dir, int gate_top_k = 0) {
  const std::string out = dir + "/mode";
  fs::create_directories(out);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) fs::copy_file(std::string("models/default/") + f, out + "/" + f);
  json cfg = json::parse(test::read_file("models/default/config.json"));
  cfg["moeforge_mode"] = {{"experts", {"code", "math"}}, {"blocks", 2}, {"layers_per_expert", 1}, {"gate_top_k", gate_top_k}};
  test::write_file(out + "/config.json", cfg.dump(2));
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open("models/default");
  std::vector<std::vector<float>> keep;
  std::vector<std::pair<std::string, TensorView>> tensors;
  auto put = [&](const std::string& name, const TensorView& like, std::vector<float> data) {
    keep.push_back(std::move(data));
    TensorView v = like;
    v.dtype = DType::F32;
    v.data = keep.back().data();
    tensors.emplace_back(name, v);
  };
  for (const auto& [name, t] : ck.tensors()) {
    const float* f = t.view.f32();
    put(name, t.view, std::vector<float>(f, f + t.view.numel()));
    const std::string prefix = "model.layers.";
    if (name.rfind(prefix, 0) != 0) continue;
    const size_t dot = name.find('.', prefix.size());
    const int il = std::stoi(name.substr(prefix.size(), dot - prefix.size()));
    if (il % 2 == 0) continue;
    for (int j = 0; j < 2; ++j) {
      std::vector<float> scaled(f, f + t.view.numel());
      for (float& x : scaled) x *= 1.1f + 0.1f * float(j);
      put(prefix + std::to_string(4 + j * 2 + il / 2) + name.substr(dot), t.view, std::move(scaled));
    }
  }
  std::mt19937 rng(3);
  std::normal_distribution<float> w(0.0f, 0.05f), b(0.0f, 0.5f);
  TensorView gate_w, gate_b;
  gate_w.n_dims = 2;
  gate_w.shape[0] = 3;
  gate_w.shape[1] = 192;
  gate_b.n_dims = 1;
  gate_b.shape[0] = 3;
  for (int blk = 0; blk < 2; ++blk) {
    std::vector<float> gw(3 * 192), gb(3);
    for (float& x : gw) x = w(rng);
    for (float& x : gb) x = b(rng);
    put("model.mode_gates." + std::to_string(blk) + ".weight", gate_w, gw);
    put("model.mode_gates." + std::to_string(blk) + ".bias", gate_b, gb);
  }
  write_safetensors(out + "/model.safetensors", tensors);
  return out;
}

json logits_of(const std::string& args) {
  auto r = test::run_cli("logits --f32 " + args + " --tokens 1,200,37,4000,15,2");
  EXPECT_EQ(r.code, 0) << r.err;
  return r.code == 0 ? json::parse(r.out)["logits"] : json();
}

// Largest |a - b| over two logits arrays of the same shape (infinity when the shapes differ).
double max_diff(const json& a, const json& b) {
  if (!a.is_array() || !b.is_array() || a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    if (a[t].size() != b[t].size()) return INFINITY;
    for (size_t v = 0; v < a[t].size(); ++v) worst = std::max(worst, std::abs(a[t][v].get<double>() - b[t][v].get<double>()));
  }
  return worst;
}

TEST(ModeCli, BackboneAloneIsTheOriginalModelAndTheChoicesDiffer) {
  const std::string dir = test::temp_dir(), mode = write_mode_fixture(dir);
  const json original = logits_of("-m models/default");
  EXPECT_EQ(max_diff(logits_of("-m " + mode + " --mode-expert backbone"), original), 0.0);  // bit for bit
  const json gated = logits_of("-m " + mode), code = logits_of("-m " + mode + " --mode-expert code"),
             math = logits_of("-m " + mode + " --mode-expert math");
  EXPECT_GT(max_diff(gated, original), 0.1);
  EXPECT_GT(max_diff(code, original), 0.1);
  EXPECT_GT(max_diff(code, math), 0.1);
  EXPECT_GT(max_diff(code, gated), 0.1);
  // GGUF: the same layout and logits (f32; q/k rows are permuted to GGUF's RoPE pairing, so
  // the sums round differently), and the quantised file runs.
  auto c = test::run_cli("convert " + mode + " " + dir + "/mode.gguf --type f32");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_LT(max_diff(logits_of("-m " + dir + "/mode.gguf"), gated), 1e-3);
  EXPECT_LT(max_diff(logits_of("-m " + dir + "/mode.gguf --mode-expert math"), math), 1e-3);
  c = test::run_cli("convert " + mode + " " + dir + "/mode-q8.gguf --type q8_0");
  ASSERT_EQ(c.code, 0) << c.err;
  auto g = test::run_cli("generate -m " + dir + "/mode-q8.gguf --mode-expert code -p 'def main(' -n 6");
  EXPECT_EQ(g.code, 0) << g.err;
  auto i = test::run_cli("inspect " + dir + "/mode-q8.gguf --json");
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_EQ(json::parse(i.out)["mode"]["experts"], json({"code", "math"}));
  EXPECT_EQ(json::parse(i.out)["mode"]["n_layer_backbone"], 4);
}

TEST(ModeCli, SlotsWithDifferentChoicesBatchAsTheyRunAlone) {
  const std::string dir = test::temp_dir();
  auto model = load_model(write_mode_fixture(dir, /*gate_top_k=*/1));
  ThreadPool pool(2);
  const std::vector<int32_t> a = {1, 200, 37, 4000}, b = {15, 2, 999};
  const int choices[] = {kModeGated, kModeBackbone, 0, 1};
  const int64_t V = model->hp.n_vocab;
  std::vector<std::vector<float>> alone;
  for (int c : choices) {
    Session s(*model, 32, pool);
    s.set_numerics({false, false});
    s.set_mode_expert(0, c);
    const float* l = s.eval(c % 2 ? b : a, false);
    alone.emplace_back(l, l + V);
  }
  Session s(*model, 32, pool, 4);
  s.set_numerics({false, false});
  std::vector<SeqInput> batch;
  for (int slot = 0; slot < 4; ++slot) {
    s.set_mode_expert(slot, choices[slot]);
    batch.push_back(SeqInput{slot, choices[slot] % 2 ? b : a, LogitRows::Last});
  }
  const float* l = s.step(batch);
  for (int slot = 0; slot < 4; ++slot)
    for (int64_t v = 0; v < V; ++v)
      ASSERT_NEAR(l[slot * V + v], alone[size_t(slot)][size_t(v)], 1e-4f * (1.0f + std::abs(alone[size_t(slot)][size_t(v)])))
          << "slot " << slot << " token " << v;
  EXPECT_THROW(s.set_mode_expert(0, 2), Error);
  std::vector<LayerWeights> layers = model->w.layers;
  EXPECT_THROW(s.set_layers(0, &layers), Error);
}

// eval scores a MoDE model as it runs (the backbone alone exactly as the original model), and
// bench measures it.
TEST(ModeCli, EvalAndBenchRunIt) {
  const std::string dir = test::temp_dir(), mode = write_mode_fixture(dir);
  test::write_file(dir + "/toy.jsonl",
                   "{\"query\": \"Question: Which one is a colour?\", \"choices\": [\"blue\", \"table\"], \"gold\": 0}\n"
                   "{\"query\": \"Question: Two plus two?\", \"choices\": [\"four\", \"five\", \"six\"], \"gold\": 0}\n");
  auto records = [&](const std::string& model, const std::string& name) {
    auto r = test::run_cli("eval " + model + " --tasks '' --task-file toy=" + dir + "/toy.jsonl --records " + dir + "/" + name +
                           " --json -q");
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<json> out;
    std::istringstream lines(test::read_file(dir + "/" + name));
    for (std::string line; std::getline(lines, line);) out.push_back(json::parse(line)["loglikelihoods"]);
    return out;
  };
  const auto original = records("-m models/default", "original.jsonl");
  ASSERT_EQ(original.size(), 2u);
  EXPECT_EQ(records("-m " + mode + " --mode-expert backbone", "backbone.jsonl"), original);
  EXPECT_NE(records("-m " + mode, "gated.jsonl"), original);
  auto route_of = [&](const std::string& name) {
    return json::parse(test::read_file(dir + "/" + name).substr(0, test::read_file(dir + "/" + name).find('\n')))["route"];
  };
  EXPECT_EQ(route_of("backbone.jsonl"), "backbone");  // where each document went
  EXPECT_EQ(route_of("gated.jsonl"), "auto");
  auto b = test::run_cli("bench -m " + mode + " --mode-expert code -p 8 -n 4 -r 1 --json");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_GT(json::parse(b.out)["decode_tps"].get<double>(), 0.0);
}

// bench's weights read per decode token count the gates and only the experts the choice runs.
TEST(ModeCli, DecodeBytesCountOnlyTheExpertsThatRun) {
  const std::string dir = test::temp_dir();
  auto model = load_model(write_mode_fixture(dir));
  auto original = load_model("models/default");
  const ModeLayout& md = model->mode;
  int64_t gates = 0;
  for (int b = 0; b < md.n_block; ++b) gates += md.gate_w[size_t(b)].nbytes() + md.gate_b[size_t(b)].nbytes();
  auto expert_bytes = [&](int j) {
    int64_t n = 0;
    for (int b = 0; b < md.n_block; ++b) {
      const LayerWeights& l = model->w.layers[size_t(md.expert_layer(j, b, 0))];
      for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) n += t->nbytes();
    }
    return n;
  };
  model->mode_expert = kModeBackbone;
  const int64_t backbone = decode_weight_bytes(*model);
  EXPECT_EQ(backbone, decode_weight_bytes(*original) + gates);
  model->mode_expert = 1;
  EXPECT_EQ(decode_weight_bytes(*model), backbone + expert_bytes(1));
  model->mode_expert = kModeGated;
  EXPECT_EQ(decode_weight_bytes(*model), backbone + expert_bytes(0) + expert_bytes(1));
}

TEST(ModeCli, BadChoicesAndFilesAreRefusedNamingTheProblem) {
  const std::string dir = test::temp_dir(), mode = write_mode_fixture(dir);
  auto r = test::run_cli("generate -m " + mode + " --mode-expert cooking -p x -n 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unknown MoDE expert 'cooking' (auto, backbone, code, math)"), std::string::npos) << r.err;
  r = test::run_cli("generate -m models/default --mode-expert code -p x -n 2");
  EXPECT_NE(r.err.find("--mode-expert needs a MoDE model"), std::string::npos) << r.err;
  r = test::run_cli("generate -m " + mode + " --lora tests/golden/data/lora/trained-default-r4 -p x -n 2");
  EXPECT_NE(r.err.find("LoRA adapters on a MoDE model are not supported"), std::string::npos) << r.err;
  r = test::run_cli("calibrate -m " + mode + " --domain code=models/default/MODEL_CARD.md --out " + dir + "/stats.gguf");
  EXPECT_NE(r.err.find("Free-MoE domain experts of a MoDE model is not supported"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/stats.gguf"));
  // Blocks that do not divide the backbone, a missing gate.
  json cfg = json::parse(test::read_file(mode + "/config.json"));
  cfg["moeforge_mode"]["blocks"] = 3;
  test::write_file(mode + "/config.json", cfg.dump());
  r = test::run_cli("generate -m " + mode + " -p x -n 2");
  EXPECT_NE(r.err.find("blocks 3 does not divide the backbone's 4 layers"), std::string::npos) << r.err;
  cfg["moeforge_mode"]["blocks"] = 2;
  cfg["moeforge_mode"]["experts"] = {"code", "math", "law"};
  test::write_file(mode + "/config.json", cfg.dump());
  r = test::run_cli("generate -m " + mode + " -p x -n 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("model.layers.8"), std::string::npos) << r.err;  // the third expert's layers are missing
}

TEST(ModeServe, RequestsForceTheBackboneOrAnExpertAndTheResponseSaysWhich) {
  const std::string dir = test::temp_dir(), mode = write_mode_fixture(dir);
  test::ServeProcess s("", mode);
  ASSERT_TRUE(s.ok()) << s.log();
  auto post = [&](const json& body, int status) {
    auto res = s.client().Post("/v1/completions", body.dump(), "application/json");
    EXPECT_TRUE(res);
    if (!res) return json();
    EXPECT_EQ(res->status, status) << res->body;
    return json::parse(res->body);
  };
  json gated = post({{"prompt", "def main("}, {"max_tokens", 6}, {"temperature", 0}}, 200);
  EXPECT_EQ(gated["moeforge"]["route"]["expert"], "auto");
  json math = post({{"prompt", "def main("}, {"max_tokens", 6}, {"temperature", 0}, {"moeforge", {{"expert", "math"}}}}, 200);
  EXPECT_EQ(math["moeforge"]["route"]["expert"], "math");
  EXPECT_EQ(math["moeforge"]["route"]["forced"], true);
  auto g = test::run_cli("generate -m " + mode + " --mode-expert math -p 'def main(' -n 6 --temp 0");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(math["choices"][0]["text"].get<std::string>() + "\n", g.out);
  json backbone = post({{"prompt", "def main("}, {"max_tokens", 6}, {"temperature", 0}, {"moeforge", {{"expert", "dense"}}}}, 200);
  EXPECT_EQ(backbone["moeforge"]["route"]["expert"], "backbone");
  // The gate weights the tokens received: prompt and generated tokens fed back (the last one is
  // sampled, not fed), per block a distribution over the backbone and the experts.
  auto expect_gates = [](const json& r, const std::string& what) -> json {
    SCOPED_TRACE(what);
    const json& g = r["moeforge"]["mode_gates"];
    const json failed = {{-1.0, -1.0, -1.0}, {-1.0, -1.0, -1.0}};
    EXPECT_TRUE(g.is_object()) << r.dump();
    if (!g.is_object()) return failed;
    EXPECT_EQ(g["mean_by_block"].size(), 2u);
    if (g["mean_by_block"].size() != 2u) return failed;
    EXPECT_EQ(g["columns"], json({"backbone", "code", "math"}));
    EXPECT_EQ(g["tokens"].get<int>(), r["usage"]["total_tokens"].get<int>() - 1);
    for (const json& row : g["mean_by_block"]) {
      double sum = 0;
      for (const json& w : row) sum += w.get<double>();
      EXPECT_NEAR(sum, 1.0, 1e-3);
    }
    return g["mean_by_block"];
  };
  json gated_w = expect_gates(gated, "gated");
  EXPECT_GT(gated_w[0][1].get<double>(), 0.0);  // every expert has a share under the gate
  EXPECT_GT(gated_w[0][2].get<double>(), 0.0);
  json math_w = expect_gates(math, "math");
  EXPECT_EQ(math_w[0][1].get<double>(), 0.0);  // the code expert is outside the forced gate
  EXPECT_EQ(math_w[1][1].get<double>(), 0.0);
  EXPECT_EQ(expect_gates(backbone, "backbone"), json({{1.0, 0.0, 0.0}, {1.0, 0.0, 0.0}}));
  json err = post({{"prompt", "x"}, {"moeforge", {{"expert", "cooking"}}}}, 400);
  EXPECT_EQ(err["error"]["code"], "unknown_expert");
  auto models = json::parse(s.client().Get("/v1/models")->body);
  EXPECT_EQ(models["data"][0]["moeforge"]["experts"], json({"auto", "backbone", "code", "math"}));
}

}  // namespace
}  // namespace mf
