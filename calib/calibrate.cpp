#include "calib/calibrate.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>

#include "calib/fingerprint.h"
#include "calib/gram_accumulator.h"
#include "calib/kmeans.h"
#include "core/error.h"
#include "core/text_file.h"
#include "model/session.h"
#include "ops/ops.h"

namespace mf {

namespace {

// A domain's files joined by a blank line; each is checked to be non-empty UTF-8.
std::string read_corpus_text(const std::vector<std::string>& files) {
  std::string text;
  for (size_t i = 0; i < files.size(); ++i) {
    text += read_text_file(files[i]);  // throws on missing, empty, non-UTF-8
    if (i + 1 < files.size()) text += "\n\n";
  }
  return text;
}

// Tokens of text, in pieces cut after a newline, stopping once max_tokens are reached.
std::vector<int32_t> tokenize_text(const Tokenizer& tok, std::string_view text, int64_t max_tokens) {
  std::vector<int32_t> ids;
  const size_t kPiece = 1 << 16;
  for (size_t pos = 0; pos < text.size() && int64_t(ids.size()) < max_tokens;) {
    size_t end = pos + kPiece >= text.size() ? text.size() : text.find('\n', pos + kPiece);
    end = end == std::string::npos ? text.size() : end + 1;
    std::vector<int32_t> t = tok.encode(text.substr(pos, end - pos), /*add_special=*/false);
    ids.insert(ids.end(), t.begin(), t.end());
    pos = end;
  }
  if (int64_t(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
  return ids;
}

bool utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The first line start at or after byte `at`, if one is within 4 KiB; else the first char
// boundary (so blocks of long-line text do not all start at the same line).
size_t line_start_from(std::string_view text, size_t at) {
  if (at == 0) return 0;
  size_t nl = text.substr(0, std::min(text.size(), at + 4096)).find('\n', at - 1);
  if (nl != std::string_view::npos) return nl + 1;
  while (at < text.size() && utf8_continuation(text[at])) ++at;
  return at;
}

// Up to `want` tokens of the text starting at byte `begin`, tokenized from there up to a line
// end so that no word is cut (the chunk doubles until it holds at least `want` tokens or reaches the end).
std::vector<int32_t> tokens_from(const Tokenizer& tok, std::string_view text, size_t begin, int64_t want) {
  std::vector<int32_t> t;
  for (size_t bytes = size_t(want) * 8 + 256;; bytes *= 2) {
    size_t end = text.size();
    if (begin + bytes < text.size()) {
      size_t nl = text.rfind('\n', begin + bytes);
      end = nl != std::string_view::npos && nl > begin ? nl + 1 : begin + bytes;
      while (end > begin && end < text.size() && utf8_continuation(text[end])) --end;
    }
    t = tok.encode(text.substr(begin, end - begin), /*add_special=*/false);
    if (int64_t(t.size()) >= want || end == text.size()) break;
  }
  if (int64_t(t.size()) > want) t.resize(size_t(want));
  return t;
}

}  // namespace

std::vector<int32_t> tokenize_corpus(const Model& model, const std::vector<std::string>& files, int64_t max_tokens) {
  return tokenize_text(model.require_tokenizer(), read_corpus_text(files), max_tokens);
}

std::vector<int32_t> select_calibration_tokens(const Model& model, const std::vector<std::string>& files, int64_t budget,
                                        int sample_tokens, CalibSampling sampling) {
  const Tokenizer& tok = model.require_tokenizer();
  const std::string text = read_corpus_text(files);
  const int64_t S = sample_tokens;
  std::vector<int32_t> ids = tokenize_text(tok, text, budget + 1);  // one more: is there text beyond the budget?
  if (sampling == CalibSampling::Head || int64_t(ids.size()) <= budget) {
    ids.resize(size_t(std::min<int64_t>(int64_t(ids.size()), budget) / S * S));
    return ids;
  }
  // Spread: whole samples in contiguous blocks of about 256 tokens, the blocks starting at
  // evenly spaced line starts of the text, so the budget covers the whole corpus.
  const int64_t n_samples = budget / S;
  const int64_t per_block = std::max<int64_t>(1, 256 / S);  // samples per block
  const int64_t n_blocks = (n_samples + per_block - 1) / per_block;
  ids.clear();
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t want = std::min(per_block, n_samples - int64_t(ids.size()) / S) * S;
    size_t begin = line_start_from(text, size_t(double(b) / double(n_blocks) * double(text.size())));
    if (begin >= text.size()) break;
    std::vector<int32_t> t = tokens_from(tok, text, begin, want);
    ids.insert(ids.end(), t.begin(), t.begin() + int64_t(t.size()) / S * S);
  }
  return ids;
}

namespace {

// Accumulates one sample's statistics from the hooks, and its embedding.
struct SampleAccumulator {
  const CalibStats& shape;
  std::vector<int> embed_layers;
  std::vector<LayerStats> layers;  // [n_layer] sums over this sample's tokens
  std::vector<double> embed_sum;   // [embed_layers.size(), n_embd]
  std::vector<int64_t> embed_tokens;  // [embed_layers.size()]
  GramAccumulator* gram = nullptr;  // FFN activation Gram matrices; null: not collecting

  SampleAccumulator(const CalibStats& s, const std::vector<int>& embed_layers)
      : shape(s), embed_layers(embed_layers) {
    layers.resize(s.n_layer);
    for (LayerStats& l : layers) l.resize(s.n_embd, s.n_embd_q, s.n_ff);
    clear();
  }
  void clear() {
    for (LayerStats& l : layers) l.resize(shape.n_embd, shape.n_embd_q, shape.n_ff);
    embed_sum.assign(embed_layers.size() * size_t(shape.n_embd), 0.0);
    embed_tokens.assign(embed_layers.size(), 0);
  }
  bool wants_forward() const {
    return std::any_of(embed_layers.begin(), embed_layers.end(), [](int l) { return l > 0; });
  }
  static void add_sq(std::vector<float>& acc, const float* x, int64_t n_tokens, int64_t width) {
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t i = 0; i < width; ++i) acc[i] += x[t * width + i] * x[t * width + i];
  }
  // Adds hidden-state rows of embedding layer `layer` (0: token embeddings), if it is listed.
  void add_rows(int layer, const float* x, int64_t n_tokens, int64_t width) {  // x: [n_tokens, width]
    for (size_t p = 0; p < embed_layers.size(); ++p) {
      if (embed_layers[p] != layer) continue;
      double* sum = embed_sum.data() + p * size_t(width);  // [width]
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t i = 0; i < width; ++i) sum[i] += x[t * width + i];
      embed_tokens[p] += n_tokens;
    }
  }
  void on_hook(const HookEvent& e) {
    LayerStats& l = layers[e.layer];
    if (e.name == "attn_in") {
      add_sq(l.attn_in_sq, e.data, e.n_tokens, e.width);
    } else if (e.name == "attn_out") {
      add_sq(l.attn_out_sq, e.data, e.n_tokens, e.width);
    } else if (e.name == "ffn_in") {
      add_sq(l.ffn_in_sq, e.data, e.n_tokens, e.width);
    } else if (e.name == "ffn_gate_act") {
      add_sq(l.act_sq, e.data, e.n_tokens, e.width);
      for (int64_t t = 0; t < e.n_tokens; ++t)
        for (int64_t i = 0; i < e.width; ++i) {
          l.act_abs[i] += std::fabs(e.data[t * e.width + i]);
          l.act_sum[i] += e.data[t * e.width + i];
        }
      l.tokens += e.n_tokens;
      if (gram) gram->add(e.layer, e.data, e.n_tokens);
    } else if (e.name == "block_out") {
      add_rows(int(e.layer) + 1, e.data, e.n_tokens, e.width);
    }
  }
  std::vector<float> embedding() const {  // [embed_layers.size() * n_embd]
    std::vector<float> e(embed_sum.size());
    const size_t w = size_t(shape.n_embd);
    for (size_t i = 0; i < e.size(); ++i) e[i] = float(embed_sum[i] / double(std::max<int64_t>(1, embed_tokens[i / w])));
    return e;
  }
};

// Adds the token embedding rows, if layer 0 is an embedding layer.
void add_token_embeddings(const Model& m, std::span<const int32_t> tokens, SampleAccumulator& acc) {
  if (std::find(acc.embed_layers.begin(), acc.embed_layers.end(), 0) == acc.embed_layers.end()) return;
  std::vector<float> row(m.hp.n_embd);  // [n_embd]
  for (int32_t t : tokens) {
    ops::dequantize_row(m.w.tok_embd.dtype, m.w.tok_embd.row(t), row.data(), m.hp.n_embd);
    acc.add_rows(0, row.data(), 1, m.hp.n_embd);
  }
}

}  // namespace

bool collects_gram(const HParams& hp, GramMode mode) {
  if (mode != GramMode::Auto) return mode == GramMode::On;
  return hp.n_layer * hp.n_ff * hp.n_ff * int64_t(sizeof(double)) <= kAutoGramBytes;
}

std::vector<int> default_embed_layers(int64_t n_layer) {
  // The outputs of up to 4 evenly spaced blocks, the last included. With spread sampling
  // (many documents) this routes better than the middle block alone on the default model;
  // with the head of each corpus (few documents) more layers overfitted (docs/benchmarks.md).
  std::vector<int> layers;
  const int64_t count = std::min<int64_t>(4, n_layer);
  for (int64_t i = 1; i <= count; ++i) {
    int l = int((i * n_layer + count - 1) / count);  // ceil(i * n_layer / count)
    if (layers.empty() || layers.back() != l) layers.push_back(l);
  }
  return layers;
}

void check_embed_layers(const std::vector<int>& layers, int64_t n_layer, const std::string& what) {
  if (layers.empty()) fail(what, ": no embedding layers");
  std::set<int> seen;
  for (int l : layers) {
    if (l < 0 || l > n_layer) fail(what, ": embedding layer ", l, " is outside 0..", n_layer);
    if (!seen.insert(l).second) fail(what, ": embedding layer ", l, " is listed twice");
  }
}

std::vector<float> sequence_embedding(const Model& model, std::span<const int32_t> tokens,
                                      const std::vector<int>& layers, ThreadPool& pool) {
  if (tokens.empty()) fail("cannot embed an empty prompt");
  check_embed_layers(layers, model.hp.n_layer, "sequence_embedding");
  CalibStats shape;
  shape.n_layer = 0;  // no layer statistics needed
  shape.n_embd = model.hp.n_embd;
  SampleAccumulator acc(shape, layers);
  add_token_embeddings(model, tokens, acc);
  if (acc.wants_forward()) {
    Session s(model, int(tokens.size()), pool);
    s.set_hook([&](const HookEvent& e) {
      if (e.name == "block_out") acc.add_rows(int(e.layer) + 1, e.data, e.n_tokens, e.width);
    });
    s.eval(tokens, false);
  }
  return acc.embedding();
}

CalibStats calibrate(const Model& model, const std::vector<DomainCorpus>& domains, const CalibOptions& opts,
                     ThreadPool& pool, const CalibProgress& progress) {
  const HParams& hp = model.hp;
  if (domains.empty()) fail("calibrate: no domains given");
  if (opts.sample_tokens < 2) fail("calibrate: samples need at least 2 tokens");
  if (opts.micro_clusters < 1) fail("calibrate: micro-clusters must be at least 1");
  std::set<std::string> names;
  for (const DomainCorpus& d : domains) {
    if (d.name.empty()) fail("calibrate: a domain has an empty name");
    if (!names.insert(d.name).second) fail("calibrate: domain '", d.name, "' is given twice");
    if (d.files.empty()) fail("calibrate: domain '", d.name, "' has no files");
  }
  CalibStats s;
  s.model_fingerprint = fingerprint_hex(model_fingerprint(model));
  s.model_path = model.path;
  s.sampling = opts.sampling == CalibSampling::Spread ? "spread" : "head";
  s.embed_layers = opts.embed_layers.empty() ? default_embed_layers(hp.n_layer) : opts.embed_layers;
  check_embed_layers(s.embed_layers, hp.n_layer, "calibrate");
  s.sample_tokens = opts.sample_tokens;
  s.dim = hp.n_embd * int64_t(s.embed_layers.size());
  s.n_layer = hp.n_layer;
  s.n_embd = hp.n_embd;
  s.n_embd_q = hp.n_embd_q();
  s.n_ff = hp.n_ff;

  // Tokenize everything first so that bad files fail before minutes of work.
  std::vector<std::vector<int32_t>> corpora;
  for (const DomainCorpus& d : domains) {
    std::vector<int32_t> ids = select_calibration_tokens(model, d.files, opts.tokens_per_domain, opts.sample_tokens, opts.sampling);
    int64_t n_samples = int64_t(ids.size()) / opts.sample_tokens;
    if (n_samples < opts.micro_clusters)
      fail("domain '", d.name, "' has ", ids.size(), " tokens: ", n_samples, " samples of ", opts.sample_tokens,
           " tokens, fewer than the ", opts.micro_clusters, " micro-clusters (give more text or --micro-clusters)");
    corpora.push_back(std::move(ids));
  }

  const int S = opts.sample_tokens;
  Session session(model, S, pool);
  SampleAccumulator acc(s, s.embed_layers);
  session.set_hook([&](const HookEvent& e) { acc.on_hook(e); });
  auto run_sample = [&](std::span<const int32_t> tokens) {
    acc.clear();
    session.reset();
    add_token_embeddings(model, tokens, acc);
    session.eval(tokens, false);
  };

  for (size_t d = 0; d < domains.size(); ++d) {
    const std::vector<int32_t>& ids = corpora[d];
    const int64_t n = int64_t(ids.size()) / S;
    const int M = opts.micro_clusters;
    // Seed pass: micro-cluster centroids from the embeddings of samples spread over the corpus.
    const int64_t n_seed = std::min<int64_t>(n, std::max<int64_t>(8 * M, 64));
    std::vector<float> seed_emb(size_t(n_seed) * s.dim);  // [n_seed, dim]
    for (int64_t i = 0; i < n_seed; ++i) {
      int64_t sample = i * n / n_seed;
      std::span<const int32_t> tokens(ids.data() + sample * S, S);
      if (!acc.wants_forward()) {
        acc.clear();
        add_token_embeddings(model, tokens, acc);
      } else {
        run_sample(tokens);
      }
      std::vector<float> e = acc.embedding();
      std::copy(e.begin(), e.end(), seed_emb.begin() + i * s.dim);
    }
    KMeansResult km = kmeans(seed_emb, n_seed, s.dim, M, opts.seed + d);

    DomainStats ds;
    ds.name = domains[d].name;
    ds.clusters.resize(M);
    for (ClusterStats& c : ds.clusters) {
      c.layers.resize(s.n_layer);
      for (LayerStats& l : c.layers) l.resize(s.n_embd, s.n_embd_q, s.n_ff);
    }
    ds.embeddings.resize(size_t(n) * s.dim);
    ds.sample_cluster.resize(n);
    std::unique_ptr<GramAccumulator> gram;
    if (collects_gram(hp, opts.gram)) gram = std::make_unique<GramAccumulator>(s.n_layer, s.n_ff);
    acc.gram = gram.get();  // from here on: the seed pass above added nothing
    for (int64_t i = 0; i < n; ++i) {
      run_sample(std::span<const int32_t>(ids.data() + i * S, S));
      std::vector<float> e = acc.embedding();
      int c = nearest_centroid(e.data(), km.centroids.data(), M, s.dim);
      ClusterStats& cs = ds.clusters[c];
      for (int64_t l = 0; l < s.n_layer; ++l) cs.layers[l].add(acc.layers[l]);
      cs.n_tokens += S;
      cs.n_samples += 1;
      std::copy(e.begin(), e.end(), ds.embeddings.begin() + i * s.dim);
      ds.sample_cluster[i] = c;
      if (progress) progress(d, (i + 1) * S, n * S);
    }
    acc.gram = nullptr;
    if (gram) ds.act_gram = gram->finish();
    ds.tokens = ids;  // exactly the n samples above
    // Centroids become the means of the samples actually assigned (empty clusters keep the seed).
    for (int c = 0; c < M; ++c) {
      ClusterStats& cs = ds.clusters[c];
      cs.centroid.assign(km.centroids.begin() + c * s.dim, km.centroids.begin() + (c + 1) * s.dim);
      if (cs.n_samples == 0) continue;
      std::vector<double> sum(s.dim, 0.0);
      for (int64_t i = 0; i < n; ++i)
        if (ds.sample_cluster[i] == c)
          for (int64_t j = 0; j < s.dim; ++j) sum[j] += ds.embeddings[i * s.dim + j];
      for (int64_t j = 0; j < s.dim; ++j) cs.centroid[j] = float(sum[j] / double(cs.n_samples));
    }
    s.domains.push_back(std::move(ds));
  }
  return s;
}

}  // namespace mf
