#include "calib/calib_stats.h"

#include "calib/fingerprint.h"
#include "core/error.h"
#include "formats/gguf.h"

namespace mf {

void LayerStats::resize(int64_t n_embd, int64_t n_embd_q, int64_t n_ff) {
  attn_in_sq.assign(n_embd, 0.0f);
  attn_out_sq.assign(n_embd_q, 0.0f);
  ffn_in_sq.assign(n_embd, 0.0f);
  act_sq.assign(n_ff, 0.0f);
  act_abs.assign(n_ff, 0.0f);
  act_sum.assign(n_ff, 0.0f);
  tokens = 0;
}

void LayerStats::add(const LayerStats& o) {
  auto acc = [](std::vector<float>& a, const std::vector<float>& b) {
    if (a.empty()) a.assign(b.size(), 0.0f);
    for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  };
  acc(attn_in_sq, o.attn_in_sq);
  acc(attn_out_sq, o.attn_out_sq);
  acc(ffn_in_sq, o.ffn_in_sq);
  acc(act_sq, o.act_sq);
  acc(act_abs, o.act_abs);
  acc(act_sum, o.act_sum);
  tokens += o.tokens;
}

int64_t DomainStats::n_tokens() const {
  int64_t n = 0;
  for (const ClusterStats& c : clusters) n += c.n_tokens;
  return n;
}

LayerStats DomainStats::pooled_layer(int layer) const {
  LayerStats s;
  for (const ClusterStats& c : clusters) s.add(c.layers[layer]);
  return s;
}

void CalibStats::check_model(const Model& model) const {
  std::string fp = fingerprint_hex(mf::model_fingerprint(model));
  if (fp != model_fingerprint)
    fail("calibration stats were computed on another model (fingerprint ", model_fingerprint, " from '", model_path,
         "'; this model is ", fp, "): run moeforge calibrate on this model");
}

int CalibStats::domain_index(const std::string& name) const {
  for (size_t i = 0; i < domains.size(); ++i)
    if (domains[i].name == name) return int(i);
  return -1;
}

namespace {

constexpr int kNumFields = 6;
const char* kLayerFields[kNumFields] = {"attn_in_sq", "attn_out_sq", "ffn_in_sq", "act_sq", "act_abs", "act_sum"};

std::vector<float>* field(LayerStats& s, int i) {
  std::vector<float>* f[kNumFields] = {&s.attn_in_sq, &s.attn_out_sq, &s.ffn_in_sq, &s.act_sq, &s.act_abs, &s.act_sum};
  return f[i];
}

std::string prefix(size_t d, size_t c) { return "calib." + std::to_string(d) + "." + std::to_string(c) + "."; }

}  // namespace

void save_calib_stats(const CalibStats& s, const std::string& path) {
  GgufWriter w;
  w.set_string("general.architecture", "moeforge.calib");
  w.set_u32("moeforge.calib.version", CalibStats::kVersion);
  w.set_string("moeforge.calib.model_fingerprint", s.model_fingerprint);
  w.set_string("moeforge.calib.model_path", s.model_path);
  w.set_string("moeforge.calib.sampling", s.sampling);
  w.set_array("moeforge.calib.embed_layers", GgufType::I32, nlohmann::json(s.embed_layers));
  w.set_u32("moeforge.calib.sample_tokens", uint32_t(s.sample_tokens));
  w.set_u32("moeforge.calib.dim", uint32_t(s.dim));
  w.set_u32("moeforge.calib.n_layer", uint32_t(s.n_layer));
  w.set_u32("moeforge.calib.n_embd", uint32_t(s.n_embd));
  w.set_u32("moeforge.calib.n_embd_q", uint32_t(s.n_embd_q));
  w.set_u32("moeforge.calib.n_ff", uint32_t(s.n_ff));
  nlohmann::json names = nlohmann::json::array(), n_clusters = nlohmann::json::array();
  for (const DomainStats& d : s.domains) names.push_back(d.name), n_clusters.push_back(int32_t(d.clusters.size()));
  w.set_u32("moeforge.calib.has_gram", s.has_gram() ? 1 : 0);
  w.set_array("moeforge.calib.domains", GgufType::STRING, names);
  w.set_array("moeforge.calib.clusters", GgufType::I32, n_clusters);
  auto f32 = [&](const std::string& name, const std::vector<float>& v, int64_t rows) {
    w.add_tensor(name, make_view(DType::F32, {rows, int64_t(v.size()) / rows}, v.data()));
  };
  for (size_t d = 0; d < s.domains.size(); ++d) {
    const DomainStats& ds = s.domains[d];
    std::string dp = "calib." + std::to_string(d) + ".";
    f32(dp + "embeddings", ds.embeddings, ds.n_samples());
    w.add_tensor(dp + "sample_cluster", make_view(DType::I32, {ds.n_samples()}, ds.sample_cluster.data()));
    if (!ds.tokens.empty())
      w.add_tensor(dp + "tokens", make_view(DType::I32, {ds.n_samples(), s.sample_tokens}, ds.tokens.data()));
    for (size_t l = 0; l < ds.act_gram.size(); ++l)
      w.add_tensor(dp + "blk." + std::to_string(l) + ".act_gram",
                   make_view(DType::F32, {s.n_ff, s.n_ff}, ds.act_gram[l].data()));
    for (size_t c = 0; c < ds.clusters.size(); ++c) {
      const ClusterStats& cs = ds.clusters[c];
      std::string p = prefix(d, c);
      w.set_array("moeforge." + p + "count", GgufType::I64, nlohmann::json::array({cs.n_tokens, cs.n_samples}));
      f32(p + "centroid", cs.centroid, 1);
      for (size_t l = 0; l < cs.layers.size(); ++l)
        for (int k = 0; k < kNumFields; ++k)
          f32(p + "blk." + std::to_string(l) + "." + kLayerFields[k], *field(const_cast<LayerStats&>(cs.layers[l]), k), 1);
    }
  }
  w.write(path);
}

CalibStats load_calib_stats(const std::string& path) {
  auto g = GgufFile::open(path);
  if (g->get_string("general.architecture", "") != "moeforge.calib")
    fail(path, ": not a moeforge calibration stats file (run moeforge calibrate)");
  int64_t version = g->get_int("moeforge.calib.version");
  if (version < CalibStats::kOldestReadable || version > CalibStats::kVersion)
    fail(path, ": calibration stats version ", version, ", this moeforge reads versions ", CalibStats::kOldestReadable,
         " to ", CalibStats::kVersion);
  CalibStats s;
  s.model_fingerprint = g->get_string("moeforge.calib.model_fingerprint");
  s.model_path = g->get_string("moeforge.calib.model_path", "");
  s.sampling = g->get_string("moeforge.calib.sampling", "head");  // files before it was recorded took the head
  for (const auto& l : g->get_array("moeforge.calib.embed_layers")) s.embed_layers.push_back(l.get<int>());
  s.sample_tokens = int(g->get_int("moeforge.calib.sample_tokens"));
  s.dim = g->get_int("moeforge.calib.dim");
  s.n_layer = g->get_int("moeforge.calib.n_layer");
  s.n_embd = g->get_int("moeforge.calib.n_embd");
  s.n_embd_q = g->get_int("moeforge.calib.n_embd_q");
  s.n_ff = g->get_int("moeforge.calib.n_ff");
  const bool has_gram = g->get_int("moeforge.calib.has_gram") != 0;
  const auto& names = g->get_array("moeforge.calib.domains");
  const auto& n_clusters = g->get_array("moeforge.calib.clusters");
  if (names.size() != n_clusters.size()) fail(path, ": domain and cluster lists differ in length");
  auto read = [&](const std::string& name, int64_t numel, DType t = DType::F32) -> const TensorView& {
    const GgufTensorInfo* ti = g->find_tensor(name);
    if (!ti) fail(path, ": missing tensor '", name, "'");
    if (ti->view.dtype != t || ti->view.numel() != numel)
      fail(path, ": tensor '", name, "' has shape ", ti->view.shape_str(), ", expected ", numel, " elements");
    return ti->view;
  };
  auto floats = [&](const std::string& name, int64_t numel) {
    const TensorView& v = read(name, numel);
    const float* p = v.f32();
    return std::vector<float>(p, p + numel);
  };
  const int64_t sizes[kNumFields] = {s.n_embd, s.n_embd_q, s.n_embd, s.n_ff, s.n_ff, s.n_ff};
  for (size_t d = 0; d < names.size(); ++d) {
    DomainStats ds;
    ds.name = names[d].get<std::string>();
    std::string dp = "calib." + std::to_string(d) + ".";
    const GgufTensorInfo* sc = g->find_tensor(dp + "sample_cluster");
    if (!sc) fail(path, ": missing tensor '", dp, "sample_cluster'");
    int64_t n = sc->view.numel();
    const TensorView& scv = read(dp + "sample_cluster", n, DType::I32);
    const int32_t* sp = static_cast<const int32_t*>(scv.data);
    ds.sample_cluster.assign(sp, sp + n);
    ds.embeddings = floats(dp + "embeddings", n * s.dim);
    if (version >= 5) {
      const TensorView& tv = read(dp + "tokens", n * s.sample_tokens, DType::I32);
      const int32_t* tp = static_cast<const int32_t*>(tv.data);
      ds.tokens.assign(tp, tp + n * s.sample_tokens);
    }
    if (has_gram)
      for (int64_t l = 0; l < s.n_layer; ++l)
        ds.act_gram.push_back(floats(dp + "blk." + std::to_string(l) + ".act_gram", s.n_ff * s.n_ff));
    const int64_t k = n_clusters[d].get<int64_t>();
    for (int64_t c = 0; c < k; ++c) {
      ClusterStats cs;
      std::string p = prefix(d, c);
      const auto& cnt = g->get_array("moeforge." + p + "count");
      if (cnt.size() != 2) fail(path, ": bad count for ", p);
      cs.n_tokens = cnt[0].get<int64_t>();
      cs.n_samples = cnt[1].get<int64_t>();
      cs.centroid = floats(p + "centroid", s.dim);
      cs.layers.resize(s.n_layer);
      for (LayerStats& ls : cs.layers) ls.tokens = cs.n_tokens;
      for (int64_t l = 0; l < s.n_layer; ++l)
        for (int f = 0; f < kNumFields; ++f)
          *field(cs.layers[l], f) = floats(p + "blk." + std::to_string(l) + "." + kLayerFields[f], sizes[f]);
      ds.clusters.push_back(std::move(cs));
    }
    for (int32_t c : ds.sample_cluster)
      if (c < 0 || c >= k) fail(path, ": sample cluster ", c, " out of range in domain '", ds.name, "'");
    s.domains.push_back(std::move(ds));
  }
  return s;
}

}  // namespace mf
