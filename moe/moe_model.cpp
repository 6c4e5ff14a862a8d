#include "moe/moe_model.h"

#include <fstream>

#include "calib/calibrate.h"
#include "calib/kmeans.h"
#include "core/error.h"
#include "model/gguf_export.h"

namespace mf {

namespace {

std::string expert_tensor(size_t e, int layer, const char* what) {
  return "moe.expert." + std::to_string(e) + ".blk." + std::to_string(layer) + "." + what;
}

int64_t view_bytes(const TensorView& v) { return v.data ? int64_t(v.nbytes()) : 0; }

}  // namespace

void MoeModel::write(const Model& model, const Router& router, const std::vector<Expert>& experts, const MoeInfo& info,
                     const std::string& path) {
  nlohmann::json names = nlohmann::json::array(), doms = nlohmann::json::array(), subs = nlohmann::json::array();
  for (const Expert& e : experts) names.push_back(e.name), doms.push_back(e.domain), subs.push_back(e.subdomain);
  auto extra = [&](GgufWriter& w) {
    w.set_string("general.name", "moeforge mixture of experts");
    w.set_u32("moeforge.moe.version", MoeInfo::kVersion);
    w.set_string("moeforge.moe.mode", info.mode);
    w.set_f32("moeforge.moe.density", float(info.density));
    w.set_f32("moeforge.moe.shared_fraction", float(info.shared_fraction));
    w.set_string("moeforge.moe.source_fingerprint", info.source_fingerprint);
    w.set_u32("moeforge.moe.reroute_every", uint32_t(info.reroute_every));
    w.set_array("moeforge.moe.expert_names", GgufType::STRING, names);
    w.set_array("moeforge.moe.expert_domains", GgufType::I32, doms);
    w.set_array("moeforge.moe.expert_subdomains", GgufType::I32, subs);
    router.write(w);
    for (size_t e = 0; e < experts.size(); ++e) {
      const Expert& x = experts[e];
      for (int il = 0; il < model.hp.n_layer; ++il) {
        const LayerWeights& l = x.layers[il];
        w.add_tensor(expert_tensor(e, il, "ffn_gate.weight"), l.ffn_gate);
        w.add_tensor(expert_tensor(e, il, "ffn_up.weight"), l.ffn_up);
        w.add_tensor(expert_tensor(e, il, "ffn_down.weight"), l.ffn_down);
        if (l.ffn_down_b.data) w.add_tensor(expert_tensor(e, il, "ffn_down.bias"), l.ffn_down_b);
        if (!x.neurons.empty())
          w.add_tensor(expert_tensor(e, il, "neurons"),
                       make_view(DType::I32, {int64_t(x.neurons[il].size())}, x.neurons[il].data()));
      }
    }
  };
  // Each dense tensor keeps its type (a Q4_K_M model mixes several).
  export_gguf(model, path, keep_types(), gguf_file_type_of(model.w.layers[0].ffn_gate.dtype), extra);
}

bool MoeModel::is_moe_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  if (!f.read(magic, 4) || std::string(magic, 4) != "GGUF") return false;
  try {
    return GgufFile::open(path)->has("moeforge.moe.version");
  } catch (const Error&) {
    return false;
  }
}

std::unique_ptr<MoeModel> MoeModel::load(const std::string& path) {
  auto m = std::make_unique<MoeModel>();
  m->file_ = GgufFile::open(path);
  const GgufFile& g = *m->file_;
  if (!g.has("moeforge.moe.version")) fail(path, ": not a moeforge .moe file (no moeforge.moe.version)");
  int64_t version = g.get_int("moeforge.moe.version");
  if (version != MoeInfo::kVersion) fail(path, ": .moe version ", version, ", this moeforge reads version ", MoeInfo::kVersion);
  m->model_ = load_model(path);
  const Model& model = *m->model_;
  const HParams& hp = model.hp;
  m->info_.mode = g.get_string("moeforge.moe.mode");
  m->info_.density = g.get_float("moeforge.moe.density", 0);
  m->info_.shared_fraction = g.get_float("moeforge.moe.shared_fraction", 0);
  m->info_.source_fingerprint = g.get_string("moeforge.moe.source_fingerprint", "");
  m->info_.reroute_every = int(g.get_int("moeforge.moe.reroute_every", 0));
  m->router_ = Router::read(g, path);
  check_embed_layers(m->router_.embed_layers, hp.n_layer, path + ": router");
  if (m->router_.dim != hp.n_embd * int64_t(m->router_.embed_layers.size()))
    fail(path, ": router dimension ", m->router_.dim, " != n_embd ", hp.n_embd, " x ", m->router_.embed_layers.size(),
         " embedding layers");
  const auto& names = g.get_array("moeforge.moe.expert_names");
  const auto& doms = g.get_array("moeforge.moe.expert_domains");
  const auto& subs = g.get_array("moeforge.moe.expert_subdomains");
  if (names.size() != doms.size() || names.size() != subs.size()) fail(path, ": expert lists differ in length");
  auto tensor = [&](const std::string& name) -> const TensorView& {
    const GgufTensorInfo* t = g.find_tensor(name);
    if (!t) fail(path, ": missing tensor '", name, "'");
    return t->view;
  };
  for (size_t e = 0; e < names.size(); ++e) {
    Expert x;
    x.name = names[e].get<std::string>();
    x.domain = doms[e].get<int>();
    x.subdomain = subs[e].get<int>();
    if (x.domain < 0 || x.domain >= m->router_.n_domain() || x.subdomain < 0 || x.subdomain >= m->router_.subdomains)
      fail(path, ": expert '", x.name, "' has domain ", x.domain, " / sub-domain ", x.subdomain, " outside the router's");
    x.layers = model.w.layers;
    for (int il = 0; il < hp.n_layer; ++il) {
      LayerWeights& l = x.layers[il];
      l.ffn_gate = tensor(expert_tensor(e, il, "ffn_gate.weight"));
      l.ffn_up = tensor(expert_tensor(e, il, "ffn_up.weight"));
      l.ffn_down = tensor(expert_tensor(e, il, "ffn_down.weight"));
      if (const GgufTensorInfo* b = g.find_tensor(expert_tensor(e, il, "ffn_down.bias"))) {
        if (b->view.dtype != DType::F32 || b->view.numel() != hp.n_embd)
          fail(path, ": expert '", x.name, "' layer ", il, " has a bad ffn_down bias ", b->view.shape_str());
        l.ffn_down_b = b->view;
      }
      const int64_t k = l.ffn_gate.shape[0];
      bool ok = l.ffn_gate.n_dims == 2 && l.ffn_up.n_dims == 2 && l.ffn_down.n_dims == 2 && k > 0 && k <= hp.n_ff &&
                l.ffn_gate.shape[1] == hp.n_embd && l.ffn_up.shape[0] == k && l.ffn_up.shape[1] == hp.n_embd &&
                l.ffn_down.shape[0] == hp.n_embd && l.ffn_down.shape[1] == k;
      if (!ok)
        fail(path, ": expert '", x.name, "' layer ", il, " has FFN shapes gate ", l.ffn_gate.shape_str(), ", up ",
             l.ffn_up.shape_str(), ", down ", l.ffn_down.shape_str(), " (n_embd ", hp.n_embd, ", n_ff ", hp.n_ff, ")");
    }
    m->experts_.push_back(std::move(x));
  }
  for (int d = 0; d < m->router_.n_domain(); ++d)
    for (int s = 0; s < m->router_.subdomains; ++s)
      if (m->find_expert(d, s) < 0) fail(path, ": no expert for domain ", m->router_.domains[d], " sub-domain ", s);
  return m;
}

int MoeModel::find_expert(int domain, int subdomain) const {
  for (size_t e = 0; e < experts_.size(); ++e)
    if (experts_[e].domain == domain && experts_[e].subdomain == subdomain) return int(e);
  return -1;
}

Routing MoeModel::route(std::span<const int32_t> tokens, ThreadPool& pool) const {
  std::vector<float> emb = sequence_embedding(*model_, tokens, router_.embed_layers, pool);  // [dim]
  Routing r;
  r.decision = router_.route(emb.data());
  r.domain = router_.domains[r.decision.domain];
  if (r.decision.dense) {
    r.expert_name = "dense";
    return r;
  }
  r.expert = find_expert(r.decision.domain, r.decision.subdomain);
  r.expert_name = experts_[r.expert].name;
  return r;
}

std::string MoeModel::choices() const {
  std::string s = "dense";
  for (const std::string& d : router_.domains) s += ", " + d;
  for (const Expert& e : experts_) s += ", " + e.name;
  return s;
}

Routing MoeModel::force(const std::string& choice, std::span<const int32_t> tokens, ThreadPool& pool) const {
  Routing r;
  r.forced = true;
  if (choice == "dense") {
    r.expert_name = "dense";
    return r;
  }
  for (size_t e = 0; e < experts_.size(); ++e)
    if (experts_[e].name == choice) {
      r.expert = int(e);
      r.expert_name = choice;
      r.domain = router_.domains[experts_[e].domain];
      r.decision.domain = experts_[e].domain;
      r.decision.subdomain = experts_[e].subdomain;
      r.decision.confidence = 1.0;
      r.decision.dense = false;
      return r;
    }
  for (int d = 0; d < router_.n_domain(); ++d) {
    if (router_.domains[d] != choice) continue;
    int sub = 0;
    if (!tokens.empty() && router_.subdomains > 1) {
      std::vector<float> emb = sequence_embedding(*model_, tokens, router_.embed_layers, pool);
      sub = nearest_centroid(emb.data(), router_.centroids.data() + size_t(d) * router_.subdomains * router_.dim,
                             router_.subdomains, router_.dim);
    }
    r.expert = find_expert(d, sub);
    r.expert_name = experts_[r.expert].name;
    r.domain = choice;
    r.decision.domain = d;
    r.decision.subdomain = sub;
    r.decision.confidence = 1.0;
    r.decision.dense = false;
    return r;
  }
  fail("unknown expert '", choice, "'; choices: ", choices());
}

const std::vector<LayerWeights>* MoeModel::layers(const Routing& r) const {
  return r.expert < 0 ? nullptr : &experts_[r.expert].layers;
}

int64_t MoeModel::expert_bytes() const {
  int64_t b = 0;
  for (const Expert& e : experts_) b += e.ffn_bytes();
  return b;
}

int64_t MoeModel::dense_bytes() const {
  const Weights& w = model_->w;
  int64_t b = view_bytes(w.tok_embd) + (w.output.data != w.tok_embd.data ? view_bytes(w.output) : 0);
  for (const LayerWeights& l : w.layers)
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) b += view_bytes(*t);
  return b;
}

}  // namespace mf
