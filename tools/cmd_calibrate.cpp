// moeforge calibrate: per-domain activation statistics and routing embeddings of a model.
#include <chrono>
#include <cstdio>

#include "calib/calibrate.h"
#include "core/error.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace mf::cli {

namespace {

struct CalibrateOptions {
  ModelOptions model;
  std::vector<std::string> domains;  // NAME=FILE[,FILE...]
  std::string out;
  CalibOptions calib;
  std::string gram = "auto";
  std::string sampling = "spread";
  bool json = false;
};

std::vector<DomainCorpus> parse_domains(const std::vector<std::string>& specs) {
  std::vector<DomainCorpus> out;
  for (const std::string& s : specs) {
    size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      fail("--domain '", s, "': expected NAME=FILE[,FILE...]");
    DomainCorpus d;
    d.name = s.substr(0, eq);
    if (d.name.find_first_of("/ ,") != std::string::npos) fail("domain name '", d.name, "' may not contain '/', ',' or spaces");
    if (d.name == "dense") fail("'dense' is reserved and cannot name a domain");
    std::string files = s.substr(eq + 1);
    for (size_t pos = 0; pos <= files.size();) {
      size_t comma = files.find(',', pos);
      if (comma == std::string::npos) comma = files.size();
      if (comma > pos) d.files.push_back(files.substr(pos, comma - pos));
      pos = comma + 1;
    }
    out.push_back(std::move(d));
  }
  return out;
}

void run_calibrate(const CalibrateOptions& o) {
  std::vector<DomainCorpus> domains = parse_domains(o.domains);
  CalibOptions calib = o.calib;
  if (o.gram == "on") calib.gram = GramMode::On;
  else if (o.gram == "off") calib.gram = GramMode::Off;
  else if (o.gram != "auto") fail("--gram must be auto, on or off");
  if (o.sampling == "head") calib.sampling = CalibSampling::Head;
  else if (o.sampling != "spread") fail("--sampling must be head or spread");
  auto model = load(o.model);
  refuse_mode_model(*model, "Free-MoE domain experts");
  ThreadPool pool(o.model.threads);
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Progress> progress;
  size_t current = size_t(-1);
  CalibStats stats = calibrate(*model, domains, calib, pool, [&](size_t d, int64_t done, int64_t total) {
    if (d != current) {
      if (progress) progress->finish();
      progress = std::make_unique<Progress>("calibrate " + domains[d].name, total);
      current = d;
    }
    progress->update(done);
  });
  if (progress) progress->finish();
  save_calib_stats(stats, o.out);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j = {{"out", o.out}, {"model_fingerprint", stats.model_fingerprint}, {"embed_layers", stats.embed_layers},
                      {"sample_tokens", stats.sample_tokens},
                      {"sampling", stats.sampling}, {"gram", stats.has_gram()}, {"seconds", secs}};
  for (const DomainStats& d : stats.domains)
    j["domains"].push_back({{"name", d.name}, {"tokens", d.n_tokens()}, {"samples", d.n_samples()},
                            {"clusters", d.clusters.size()}});
  if (o.json) {
    std::printf("%s\n", dump_json(j).c_str());
  } else {
    for (const DomainStats& d : stats.domains)
      std::printf("%-12s %8lld tokens  %5lld samples  %zu micro-clusters\n", d.name.c_str(), (long long)d.n_tokens(),
                  (long long)d.n_samples(), d.clusters.size());
    std::printf("wrote %s in %.1f s\n", o.out.c_str(), secs);
  }
}

}  // namespace

void add_calibrate(CLI::App& app) {
  auto o = std::make_shared<CalibrateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Stream domain corpora through a model and record, per layer and domain, the input-channel norms of every\n"
      "linear layer, FFN neuron activation statistics and per-sample routing embeddings (input of build-moe)");
  add_model_options(cmd, o->model);
  cmd->add_option("-d,--domain", o->domains, "NAME=FILE[,FILE...] (repeat for each domain)")->required();
  cmd->add_option("-o,--out", o->out, "Output statistics file (GGUF-based, tied to the model)")->required();
  cmd->add_option("--tokens-per-domain", o->calib.tokens_per_domain, "Token budget per domain")->check(CLI::PositiveNumber);
  cmd->add_option("--sampling", o->sampling,
                  "Which tokens a corpus longer than the budget gives: spread (default: blocks of about 256 tokens\n"
                  "from evenly spaced places, so the budget covers every part of the corpus) or head (the first ones)");
  cmd->add_option("--sample-tokens", o->calib.sample_tokens, "Tokens per calibration sample")->check(CLI::Range(2, 4096));
  cmd->add_option("--micro-clusters", o->calib.micro_clusters,
                  "K-means clusters per domain; build-moe --subdomains can be at most this")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--embed-layers", o->calib.embed_layers,
                  "Routing embedding: comma-separated layers L whose mean hidden state over a sample's tokens "
                  "is concatenated (0: token embeddings, L > 0: block L-1's output); default: up to 4 evenly spaced\n"
                  "blocks ending with the last (1,2,3,4 for a 4-layer model)")
      ->delimiter(',');
  cmd->add_option("--gram", o->gram,
                  "Also sum a a^T of the FFN activations per layer and domain, for build-moe's least-squares\n"
                  "compensation: on, off, or auto (on when a domain's sums take at most 256 MiB in f64;\n"
                  "n_layer x n_ff^2 floats per domain in the file)");
  cmd->add_option("--seed", o->calib.seed, "K-means seed");
  cmd->add_flag("--json", o->json, "Print a JSON summary");
  cmd->callback([o] { run_calibrate(*o); });
}

}  // namespace mf::cli
