// calibrate -> build-moe -> route / generate / perplexity / bench / inspect / eval-moe, end to
// end on the default model and small committed domain texts, plus bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace mf {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_cli;

const std::string kModel = "models/default";
std::string domains() {
  std::string s;
  for (const char* d : {"code", "math", "prose", "reference"})
    s += std::string(" --domain ") + d + "=tests/data/moe/" + d + ".txt";
  return s;
}
const std::string kSmall = " --tokens-per-domain 2048 --sample-tokens 32 --micro-clusters 4";

// Stats and a .moe built once for the whole suite.
struct Built {
  std::string dir, stats, moe;
};
const Built& built() {
  static Built b = [] {
    Built x;
    x.dir = test::temp_dir();
    x.stats = x.dir + "/stats.gguf";
    x.moe = x.dir + "/n50.moe";
    auto c = run_cli("calibrate -m " + kModel + domains() + kSmall + " -o " + x.stats + " --json");
    EXPECT_EQ(c.code, 0) << c.err;
    auto b2 = run_cli("build-moe -m " + kModel + " -s " + x.stats + " --density 0.5 --subdomains 2 -o " + x.moe + " --json");
    EXPECT_EQ(b2.code, 0) << b2.err;
    return x;
  }();
  return b;
}

// Gemma 3 (GELU gate, post-FFN norm) takes the default sequential gate-up re-fit, and the
// experts run.
TEST(MoeCli, GemmaBuildsWithTheDefaultSequentialRefit) {
  const std::string gemma = "tests/golden/data/models/gemma3-swa6", dir = test::temp_dir();
  auto c = run_cli("calibrate -m " + gemma + " --domain code=tests/data/moe/code.txt --domain prose=tests/data/moe/prose.txt" +
                   kSmall + " --gram on -o " + dir + "/s.gguf");
  ASSERT_EQ(c.code, 0) << c.err;
  auto b = run_cli("build-moe -m " + gemma + " -s " + dir + "/s.gguf --density 0.5 -t 2 -o " + dir + "/g.moe --json");
  ASSERT_EQ(b.code, 0) << b.err;
  json j = json::parse(b.out);
  EXPECT_EQ(j["refit"], "sequential");
  EXPECT_EQ(j["refit_rows"], "gate-up");
  const std::string ppl = "perplexity -m " + dir + "/g.moe -f tests/data/moe/prose_test.txt -c 64 --json --domain ";
  auto pe = run_cli(ppl + "prose"), pd = run_cli(ppl + "dense");
  ASSERT_EQ(pe.code, 0) << pe.err;
  ASSERT_EQ(pd.code, 0) << pd.err;
  const double expert = json::parse(pe.out)["ppl"], dense = json::parse(pd.out)["ppl"];
  EXPECT_TRUE(std::isfinite(expert) && expert > 1.0) << expert;
  EXPECT_NE(expert, dense);
}

TEST(MoeCli, CalibrateAndBuildReportJson) {
  std::string dir = test::temp_dir();
  auto c = run_cli("calibrate -m " + kModel + domains() + kSmall + " -o " + dir + "/s.gguf --json");
  ASSERT_EQ(c.code, 0) << c.err;
  json j = json::parse(c.out);
  ASSERT_EQ(j["domains"].size(), 4u);
  EXPECT_EQ(j["domains"][1]["name"], "math");
  EXPECT_EQ(j["domains"][1]["tokens"], 2048);
  EXPECT_EQ(j["sampling"], "spread");  // the default; the test corpora are longer than the budget
  auto b = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.25 --mode dowp -o " + dir + "/d.moe --json");
  ASSERT_EQ(b.code, 0) << b.err;
  json bj = json::parse(b.out);
  EXPECT_EQ(bj["experts"], 4);
  EXPECT_EQ(bj["mode"], "dowp");
  EXPECT_GT(bj["expert_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(bj["router"]["hidden"], 256);  // the MLP router by default
  EXPECT_EQ(bj["router"]["holdout_samples"], 4 * 6);  // 10% of each domain's 64 samples
  EXPECT_GT(bj["router"]["train_accuracy"].get<double>(), 0.5);
  EXPECT_TRUE(j["gram"].get<bool>());  // auto: on for the small default model
  EXPECT_EQ(bj["decode_speedup_bound"], 1.0);  // DOWP keeps the dense shapes: no fewer bytes per token

  // Least squares is the default compensation with Gram matrices, mean without them, and
  // asking for it without them is a clear error that writes nothing.
  auto lsq = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 -o " + dir + "/l.moe --json");
  ASSERT_EQ(lsq.code, 0) << lsq.err;
  json lj = json::parse(lsq.out);
  EXPECT_EQ(lj["compensation"], "lsq");
  EXPECT_EQ(lj["layer_widths"], "error");  // auto: widths by re-fit error with lsq
  // Half the FFN neurons: the FFNs' bytes per token at most halve, the rest stays.
  const double dense_step = lj["dense_decode_bytes"], expert_step = lj["expert_decode_bytes"], dense_ffn = lj["dense_ffn_bytes"];
  EXPECT_LT(expert_step, dense_step);
  EXPECT_GE(expert_step, dense_step - 0.5 * dense_ffn - 1024);  // slack for rounding to whole quantisation blocks
  EXPECT_DOUBLE_EQ(lj["decode_speedup_bound"].get<double>(), dense_step / expert_step);
  auto off = run_cli("calibrate -m " + kModel + domains() + kSmall + " --gram off -o " + dir + "/s0.gguf --json");
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_FALSE(json::parse(off.out)["gram"].get<bool>());
  auto mean = run_cli("build-moe -m " + kModel + " -s " + dir + "/s0.gguf --density 0.5 -o " + dir + "/m.moe --json");
  ASSERT_EQ(mean.code, 0) << mean.err;
  EXPECT_EQ(json::parse(mean.out)["compensation"], "mean");
  json mj = json::parse(mean.out);
  EXPECT_EQ(mj["layer_widths"], "uniform");
  auto total = [](const json& widths) {
    int64_t t = 0;
    for (const auto& w : widths) t += w.get<int64_t>();
    return t;
  };
  for (const auto& [name, widths] : lj["expert_widths"].items())  // other widths, the same total
    EXPECT_EQ(total(widths), total(mj["expert_widths"][name])) << name;
  EXPECT_NE(lj["expert_widths"]["code/0"], mj["expert_widths"]["code/0"]);
  auto bad_widths = run_cli("build-moe -m " + kModel + " -s " + dir + "/s0.gguf --density 0.5 --layer-widths error -o " + dir + "/x.moe");
  EXPECT_EQ(bad_widths.code, 1);
  EXPECT_NE(bad_widths.err.find("least-squares"), std::string::npos) << bad_widths.err;
  auto bogus = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 --layer-widths wide -o " + dir + "/x.moe");
  EXPECT_EQ(bogus.code, 1);
  EXPECT_NE(bogus.err.find("uniform, error or relative"), std::string::npos) << bogus.err;
  // Widths by relative error: the same total, split by another measure.
  auto rel = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 --layer-widths relative --refit plain -o " +
                     dir + "/r.moe --json");
  ASSERT_EQ(rel.code, 0) << rel.err;
  const json relj = json::parse(rel.out);
  EXPECT_EQ(relj["layer_widths"], "relative");
  for (const auto& [name, widths] : relj["expert_widths"].items()) EXPECT_EQ(total(widths), total(mj["expert_widths"][name])) << name;
  auto bad = run_cli("build-moe -m " + kModel + " -s " + dir + "/s0.gguf --density 0.5 --compensation lsq -o " + dir + "/x.moe");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("Gram"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.moe"));

  // With lsq and token ids the default is OBS selection and a sequential re-fit toward the
  // residual stream; spelling that out gives the same file, and without lsq neither applies.
  EXPECT_EQ(lj["select"], "obs");
  EXPECT_EQ(lj["refit"], "sequential");
  EXPECT_EQ(lj["refit_target"], "residual");
  EXPECT_EQ(lj["refit_rows"], "gate-up");  // auto: gate-up with the sequential re-fit
  EXPECT_EQ(lj["refit_rounds"], 1);
  EXPECT_EQ(mj["select"], "score");
  EXPECT_EQ(mj["refit"], "none");
  EXPECT_EQ(mj["refit_rows"], "down");
  auto spelled = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 --select obs --refit sequential " +
                         "--refit-target residual --refit-rows gate-up -o " + dir + "/d.moe --json");
  ASSERT_EQ(spelled.code, 0) << spelled.err;
  EXPECT_TRUE(test::read_file(dir + "/d.moe") == test::read_file(dir + "/l.moe"));  // (EXPECT_EQ would diff megabytes)
  // A plain re-fit: the same widths (both from the dense Gram matrices), other down weights.
  auto plain = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 --refit plain -o " + dir + "/p.moe --json");
  ASSERT_EQ(plain.code, 0) << plain.err;
  json pj = json::parse(plain.out);
  EXPECT_EQ(pj["refit"], "plain");
  EXPECT_EQ(pj["refit_rows"], "down");  // auto without the sequential re-fit
  EXPECT_EQ(pj["expert_widths"], lj["expert_widths"]);
  EXPECT_NE(test::read_file(dir + "/p.moe"), test::read_file(dir + "/l.moe"));
  // Toward the dense FFN output (the shorthand flag): other weights again, same widths.
  auto ffn = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 --sequential-refit --refit-tokens 1024 " +
                     "--refit-target ffn -o " + dir + "/r.moe --json");
  ASSERT_EQ(ffn.code, 0) << ffn.err;
  json rj = json::parse(ffn.out);
  EXPECT_EQ(rj["refit"], "sequential");
  EXPECT_EQ(rj["refit_target"], "ffn");
  EXPECT_EQ(rj["expert_widths"], lj["expert_widths"]);
  EXPECT_NE(test::read_file(dir + "/r.moe"), test::read_file(dir + "/l.moe"));
  // Re-fitting ffn_down alone, or with the up rows: the same widths, other weights.
  for (const char* rows : {"down", "up"}) {
    auto r = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 --refit-rows " + rows + " -o " + dir +
                     "/w.moe --json");
    ASSERT_EQ(r.code, 0) << r.err;
    json wj = json::parse(r.out);
    EXPECT_EQ(wj["refit_rows"], rows);
    EXPECT_EQ(wj["expert_widths"], lj["expert_widths"]);
    EXPECT_NE(test::read_file(dir + "/w.moe"), test::read_file(dir + "/l.moe")) << rows;
  }
  // gate-up builds are reproducible bit for bit, whatever the heap's layout: glibc's mmap
  // threshold moves the buffers' alignments, which once changed the re-fit's rounding.
  std::string heaps[2];
  for (int i = 0; i < 2; ++i) {
    setenv("MALLOC_MMAP_THRESHOLD_", i == 0 ? "131072" : "1048576", 1);
    auto r = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 --refit-rows gate-up -o " + dir + "/h.moe");
    unsetenv("MALLOC_MMAP_THRESHOLD_");
    ASSERT_EQ(r.code, 0) << r.err;
    heaps[i] = test::read_file(dir + "/h.moe");
  }
  EXPECT_TRUE(heaps[0] == heaps[1]);
  auto rows_plain = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 --refit plain --refit-rows up -o " +
                            dir + "/x.moe");
  EXPECT_EQ(rows_plain.code, 1);
  EXPECT_NE(rows_plain.err.find("needs the sequential re-fit"), std::string::npos) << rows_plain.err;
  auto rows_bogus = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 --refit-rows gate -o " + dir + "/x.moe");
  EXPECT_NE(rows_bogus.code, 0);
  EXPECT_NE(rows_bogus.err.find("--refit-rows"), std::string::npos) << rows_bogus.err;
  // Selection by score: other neurons, so another file.
  auto score = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 --select score -o " + dir + "/c.moe --json");
  ASSERT_EQ(score.code, 0) << score.err;
  EXPECT_EQ(json::parse(score.out)["select"], "score");
  EXPECT_NE(test::read_file(dir + "/c.moe"), test::read_file(dir + "/l.moe"));
  for (const char* bad_args : {"--sequential-refit --refit-target logits", "--refit layerwise", "--select best"}) {
    auto r = run_cli("build-moe -m " + kModel + " -s " + dir + "/s.gguf --density 0.5 " + bad_args + " -o " + dir + "/x.moe");
    EXPECT_EQ(r.code, 1) << bad_args;
    EXPECT_NE(r.err.find("expected"), std::string::npos) << r.err;
  }
  auto obs_mean = run_cli("build-moe -m " + kModel + " -s " + dir + "/s0.gguf --density 0.5 --obs-select -o " + dir + "/x.moe");
  EXPECT_EQ(obs_mean.code, 1);
  EXPECT_NE(obs_mean.err.find("least-squares"), std::string::npos) << obs_mean.err;
  auto seq_mean = run_cli("build-moe -m " + kModel + " -s " + dir + "/s0.gguf --density 0.5 --sequential-refit -o " + dir + "/x.moe");
  EXPECT_EQ(seq_mean.code, 1);
  EXPECT_NE(seq_mean.err.find("least-squares"), std::string::npos) << seq_mean.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.moe"));
}

// An interrupted build keeps its finished experts in OUT.checkpoint/ and the same command
// resumes from them: the .moe equals an uninterrupted build's byte for byte. A checkpoint file
// that cannot be read, or one saved by another command, is built again.
TEST(MoeCli, BuildResumesFromItsCheckpoint) {
  const std::string dir = test::temp_dir(), base = "build-moe -m " + kModel + " -s " + built().stats +
                                                   " --density 0.5 --refit plain -o ";
  auto a = run_cli(base + dir + "/a.moe");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_FALSE(fs::exists(dir + "/a.moe.checkpoint")) << "removed once the .moe is written";
  EXPECT_EQ(a.err.find("resumed"), std::string::npos);

  // Interrupted: the output path is a directory, so every expert is built and kept, then the
  // write fails; the directory is gone for the rerun.
  const auto interrupt = [&](const std::string& cmd, const std::string& out) {
    fs::create_directory(out);
    auto failed = run_cli(cmd + out);
    EXPECT_EQ(failed.code, 1);
    EXPECT_NE(failed.err.find(out), std::string::npos) << failed.err;
    for (int e = 0; e < 4; ++e)
      EXPECT_TRUE(fs::exists(out + ".checkpoint/expert-" + std::to_string(e) + ".gguf")) << out << " " << e;
    fs::remove(out);
  };
  interrupt(base, dir + "/b.moe");
  fs::resize_file(dir + "/b.moe.checkpoint/expert-2.gguf", 100);  // cut short: built again
  auto b = run_cli(base + dir + "/b.moe -t 1 --json");  // the thread count is not part of the key
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(json::parse(b.out)["resumed_experts"], 3);
  EXPECT_NE(b.err.find("resumed: 3 of 4 experts"), std::string::npos) << b.err;
  EXPECT_EQ(test::read_file(dir + "/a.moe"), test::read_file(dir + "/b.moe"));
  EXPECT_FALSE(fs::exists(dir + "/b.moe.checkpoint"));

  // Another option, another key: nothing is taken from the checkpoint.
  interrupt(base, dir + "/c.moe");
  auto c = run_cli(base + dir + "/c.moe --refit-damp 0.01");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.err.find("resumed"), std::string::npos) << c.err;
  EXPECT_NE(test::read_file(dir + "/a.moe"), test::read_file(dir + "/c.moe"));

  // DOWP experts (dense-shaped, no neuron lists) come back the same way.
  const std::string dowp = "build-moe -m " + kModel + " -s " + built().stats + " --density 0.5 --mode dowp -o ";
  ASSERT_EQ(run_cli(dowp + dir + "/d1.moe").code, 0);
  interrupt(dowp, dir + "/d2.moe");
  auto d = run_cli(dowp + dir + "/d2.moe");
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.err.find("resumed: 4 of 4 experts"), std::string::npos) << d.err;
  EXPECT_EQ(test::read_file(dir + "/d1.moe"), test::read_file(dir + "/d2.moe"));
}

TEST(MoeCli, RouteSendsDomainPromptsToTheirExperts) {
  const Built& b = built();
  // Held-out prompts of about 100 tokens: the start of each quarter of a domain's test text.
  // The router was calibrated on only 2048 tokens per domain, so allow one miss per domain.
  std::string dir = test::temp_dir();
  int correct_total = 0;
  for (const char* d : {"code", "math", "prose", "reference"}) {
    std::string text = test::read_file(std::string("tests/data/moe/") + d + "_test.txt");
    int correct = 0;
    for (int q = 0; q < 4; ++q) {
      std::string prompt = text.substr(text.size() * q / 4, 400);
      while (!prompt.empty() && (prompt.back() & 0xC0) == 0x80) prompt.pop_back();  // whole UTF-8 characters
      if (!prompt.empty() && (prompt.back() & 0x80)) prompt.pop_back();
      test::write_file(dir + "/p.txt", prompt);
      auto r = run_cli("route --moe " + b.moe + " --file " + dir + "/p.txt --json");
      ASSERT_EQ(r.code, 0) << r.err;
      json j = json::parse(r.out);
      correct += j["domain"] == d;
      EXPECT_GT(j["confidence"].get<double>(), 0.25);
      EXPECT_TRUE(j["subdomain"] == 0 || j["subdomain"] == 1);
    }
    EXPECT_GE(correct, 3) << d;
    correct_total += correct;
  }
  EXPECT_GE(correct_total, 14);
}

TEST(MoeCli, GeneratePerplexityBenchInspectUseTheExperts) {
  const Built& b = built();
  auto dense = run_cli("generate -m " + b.moe + " -p 'def parse(args):' -n 12 --temp 0 --domain dense --json");
  auto code = run_cli("generate -m " + b.moe + " -p 'def parse(args):' -n 12 --temp 0 --domain code/0 --json");
  auto routed = run_cli("generate -m " + b.moe + " -p 'def parse(args):' -n 12 --temp 0 --json");
  ASSERT_EQ(dense.code, 0) << dense.err;
  ASSERT_EQ(code.code, 0) << code.err;
  ASSERT_EQ(routed.code, 0) << routed.err;
  EXPECT_EQ(json::parse(code.out)["route"]["expert"], "code/0");
  EXPECT_EQ(json::parse(dense.out)["route"]["expert"], "dense");
  EXPECT_TRUE(json::parse(routed.out)["route"].contains("confidence"));

  std::string ppl = "perplexity -m " + b.moe + " -f tests/data/moe/math_test.txt -c 64 --json";
  auto pd = run_cli(ppl + " --domain dense"), pm = run_cli(ppl + " --domain math"), pr = run_cli(ppl);
  ASSERT_EQ(pd.code, 0) << pd.err;
  ASSERT_EQ(pm.code, 0) << pm.err;
  ASSERT_EQ(pr.code, 0) << pr.err;
  double d = json::parse(pd.out)["ppl"], m = json::parse(pm.out)["ppl"];
  EXPECT_NE(d, m);  // the expert is a different function
  auto dense_model = run_cli("perplexity -m " + kModel + " -f tests/data/moe/math_test.txt -c 64 --json");
  EXPECT_NEAR(json::parse(dense_model.out)["ppl"].get<double>(), d, 1e-4 * d);  // .moe keeps the dense model
  EXPECT_TRUE(json::parse(pr.out).contains("windows_per_expert"));

  auto bench = run_cli("bench -m " + b.moe + " --domain prose -p 16 -n 8 -r 1 --json");
  ASSERT_EQ(bench.code, 0) << bench.err;
  EXPECT_EQ(json::parse(bench.out)["expert"], "prose/0");

  auto ins = run_cli("inspect " + b.moe + " --json");
  ASSERT_EQ(ins.code, 0) << ins.err;
  json ij = json::parse(ins.out);
  EXPECT_EQ(ij["moe"]["experts"].size(), 8u);
  EXPECT_EQ(ij["moe"]["subdomains"], 2);
}

TEST(MoeCli, EvalMoeWritesTheReport) {
  const Built& b = built();
  std::string out = test::temp_dir() + "/eval";
  std::string tests;
  for (const char* d : {"code", "math", "prose", "reference"})
    tests += std::string(" --test ") + d + "=tests/data/moe/" + d + "_test.txt";
  // A small evaluation at D=0.5 with extra options.
  auto small_eval = [&](const std::string& extra, const std::string& out_dir) {
    return run_cli("eval-moe -m " + kModel + " -s " + b.stats + tests +
                   " --densities 0.5 -c 64 --max-tokens 512 --router-prompts 5 --prompt-lengths 32 --bench-reps 1" + extra +
                   " -o " + out_dir);
  };
  auto r = small_eval("", out);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"results.md", "perplexity.csv", "router_confusion.csv", "speed.csv", "results.json", "ppl_code.svg"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  json j = json::parse(test::read_file(out + "/results.json"));
  for (const char* m : {"neurons", "dowp", "random", "magnitude", "agnostic", "wanda"})
    EXPECT_GT(j["ppl"]["math"][m]["0.50"].get<double>(), 1.0) << m;
  EXPECT_EQ(j["router"]["32"]["prompts"], 20);
  // --methods: only those methods' perplexity; an unknown one is a clear error.
  std::string some = test::temp_dir() + "/eval_some";
  auto r2 = small_eval(" --methods neurons wanda", some);
  ASSERT_EQ(r2.code, 0) << r2.err;
  json j2 = json::parse(test::read_file(some + "/results.json"));
  EXPECT_EQ(j2["ppl"]["math"].size(), 2u);
  EXPECT_EQ(j2["ppl"]["math"]["neurons"]["0.50"], j["ppl"]["math"]["neurons"]["0.50"]);
  EXPECT_EQ(j2["ppl"]["math"]["wanda"]["0.50"], j["ppl"]["math"]["wanda"]["0.50"]);
  // --refit-rows reaches the domain experts (and the report says so).
  EXPECT_NE(test::read_file(out + "/results.md").find("re-fitting the gate-up rows"), std::string::npos);  // auto
  std::string rows = test::temp_dir() + "/eval_rows";
  auto rr = small_eval(" --methods neurons wanda --refit-rows down", rows);
  ASSERT_EQ(rr.code, 0) << rr.err;
  json j3 = json::parse(test::read_file(rows + "/results.json"));
  EXPECT_NE(j3["ppl"]["math"]["neurons"]["0.50"], j["ppl"]["math"]["neurons"]["0.50"]);
  EXPECT_EQ(j3["ppl"]["math"]["wanda"]["0.50"], j["ppl"]["math"]["wanda"]["0.50"]);
  EXPECT_NE(test::read_file(rows + "/results.md").find("re-fitting the down rows"), std::string::npos);
  // By default the domain experts choose by OBS and re-fit sequentially; the options to do
  // neither reach them.
  EXPECT_NE(test::read_file(out + "/results.md").find("sequential re-fit toward the residual target"), std::string::npos);
  EXPECT_NE(test::read_file(out + "/results.md").find("chosen by OBS"), std::string::npos);
  auto rs = small_eval(" --methods neurons --refit plain --select score", some + "s");
  ASSERT_EQ(rs.code, 0) << rs.err;
  json js = json::parse(test::read_file(some + "s/results.json"));
  EXPECT_GT(js["ppl"]["math"]["neurons"]["0.50"].get<double>(), 1.0);
  EXPECT_NE(js["ppl"]["math"]["neurons"]["0.50"], j["ppl"]["math"]["neurons"]["0.50"]);
  auto r3 = run_cli("eval-moe -m " + kModel + " -s " + b.stats + tests + " --methods neurons sparsegpt -o " + some + "3");
  EXPECT_EQ(r3.code, 1);
  EXPECT_NE(r3.err.find("unknown method 'sparsegpt'"), std::string::npos) << r3.err;
  EXPECT_FALSE(fs::exists(some + "3"));
}

// A one-line error naming `needle`, exit code 1, no output file.
void expect_failure(const std::string& args, const std::string& needle, const std::string& must_not_exist = "") {
  auto r = run_cli(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos);
  if (!must_not_exist.empty()) {
    EXPECT_FALSE(fs::exists(must_not_exist));
    EXPECT_FALSE(fs::exists(must_not_exist + ".tmp"));
  }
}

TEST(MoeCli, BadInputFailsCleanly) {
  const Built& b = built();
  std::string dir = test::temp_dir();
  test::write_file(dir + "/empty.txt", "");
  test::write_file(dir + "/latin1.txt", std::string("caf\xe9 au lait\n", 13));
  expect_failure("calibrate -m " + kModel + " --domain a=" + dir + "/empty.txt -o " + dir + "/s.gguf", "empty", dir + "/s.gguf");
  expect_failure("calibrate -m " + kModel + " --domain a=" + dir + "/latin1.txt -o " + dir + "/s.gguf", "UTF-8", dir + "/s.gguf");
  expect_failure("calibrate -m " + kModel + " --domain a=tests/data/moe/math.txt --micro-clusters 200 -o " + dir + "/s.gguf",
                 "micro-clusters", dir + "/s.gguf");
  expect_failure("calibrate -m " + kModel + " --domain nofile -o " + dir + "/s.gguf", "NAME=FILE", dir + "/s.gguf");
  expect_failure("calibrate -m " + kModel + " --domain a=tests/data/moe/math.txt --sampling tail -o " + dir + "/s.gguf",
                 "--sampling", dir + "/s.gguf");
  // A domain with too few calibration clusters for its sub-domain count.
  expect_failure("build-moe -m " + kModel + " -s " + b.stats + " --density 0.5 --subdomains 5 -o " + dir + "/x.moe",
                 "too few for 5 sub-domains", dir + "/x.moe");
  for (const char* d : {"0", "1.5", "-0.2"})
    expect_failure("build-moe -m " + kModel + " -s " + b.stats + " --density " + d + " -o " + dir + "/x.moe", "density",
                   dir + "/x.moe");
  expect_failure("build-moe -m " + kModel + " -s " + b.stats + " --density 0.5 --router-weight-decay 1000 -o " + dir + "/x.moe",
                 "router weight decay", dir + "/x.moe");
  // Stats from another model.
  expect_failure("build-moe -m tests/golden/data/models/llama-gqa4-untied -s " + b.stats + " --density 0.5 -o " + dir + "/x.moe",
                 "another model", dir + "/x.moe");
  expect_failure("build-moe -m " + kModel + " -s tests/data/moe/code.txt --density 0.5 -o " + dir + "/x.moe", "code.txt",
                 dir + "/x.moe");
  // A corrupted .moe file.
  std::string bytes = test::read_file(b.moe);
  test::write_file(dir + "/cut.moe", bytes.substr(0, bytes.size() / 3));
  expect_failure("route --moe " + dir + "/cut.moe -p hello", "cut.moe");
  expect_failure("generate -m " + dir + "/cut.moe -p hello -n 2", "cut.moe");
  expect_failure("generate -m " + b.moe + " -p hello -n 2 --domain cooking", "unknown expert 'cooking'");
  expect_failure("generate -m " + kModel + " -p hello -n 2 --domain code", "needs a .moe model");
}

}  // namespace
}  // namespace mf
