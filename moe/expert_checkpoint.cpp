#include "moe/expert_checkpoint.h"

#include <filesystem>

#include "core/error.h"
#include "formats/gguf.h"

namespace mf {

namespace {

namespace fs = std::filesystem;

std::string layer_tensor(int layer, const char* what) { return "blk." + std::to_string(layer) + "." + what; }

// The FFN views of an expert layer, in file order, with the names they are saved under.
struct FfnSlot {
  const char* name;
  TensorView LayerWeights::*view;
};
constexpr FfnSlot kSlots[] = {{"ffn_gate.weight", &LayerWeights::ffn_gate},
                              {"ffn_up.weight", &LayerWeights::ffn_up},
                              {"ffn_down.weight", &LayerWeights::ffn_down},
                              {"ffn_down.bias", &LayerWeights::ffn_down_b}};

}  // namespace

std::string ExpertCheckpoint::path(size_t index) const {
  return (fs::path(dir_) / ("expert-" + std::to_string(index) + ".gguf")).string();
}

bool ExpertCheckpoint::save(const Model& model, size_t index, const Expert& e, std::string* why) const {
  try {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) fail(dir_, ": cannot create the checkpoint directory: ", ec.message());
    GgufWriter w;
    w.set_string("moeforge.checkpoint.key", key_);
    w.set_string("moeforge.checkpoint.expert_name", e.name);
    w.set_i32("moeforge.checkpoint.domain", e.domain);
    w.set_i32("moeforge.checkpoint.subdomain", e.subdomain);
    w.set_u32("moeforge.checkpoint.n_layer", uint32_t(model.hp.n_layer));
    for (int il = 0; il < model.hp.n_layer; ++il) {
      const LayerWeights& l = e.layers.at(size_t(il));
      for (const FfnSlot& s : kSlots)
        if ((l.*s.view).data) w.add_tensor(layer_tensor(il, s.name), l.*s.view);
      if (!e.neurons.empty()) {
        const std::vector<int32_t>& n = e.neurons.at(size_t(il));
        w.add_tensor(layer_tensor(il, "neurons"), make_view(DType::I32, {int64_t(n.size())}, n.data()));
      }
    }
    w.write(path(index));
    return true;
  } catch (const std::exception& err) {
    if (why) *why = err.what();
    return false;
  }
}

std::optional<Expert> ExpertCheckpoint::load(const Model& model, size_t index, std::string* why) const {
  const std::string p = path(index);
  auto refuse = [&](const std::string& reason) -> std::optional<Expert> {
    if (why) *why = p + ": " + reason;
    return std::nullopt;
  };
  try {  // whatever is wrong with the file, the expert is built again
    std::error_code ec;
    if (!fs::exists(p, ec)) return refuse("none saved");
    const std::unique_ptr<GgufFile> g = GgufFile::open(p);
    if (g->get_string("moeforge.checkpoint.key", "") != key_) return refuse("saved by another command or input");
    const int64_t n_layer = model.hp.n_layer, n_embd = model.hp.n_embd;
    if (g->get_int("moeforge.checkpoint.n_layer", -1) != n_layer) return refuse("another layer count");
    Expert e;
    e.name = g->get_string("moeforge.checkpoint.expert_name", "");
    e.domain = int(g->get_int("moeforge.checkpoint.domain", -1));
    e.subdomain = int(g->get_int("moeforge.checkpoint.subdomain", 0));
    e.layers = model.w.layers;
    e.buffers.reserve(size_t(n_layer) * 4);
    const bool has_neurons = g->find_tensor(layer_tensor(0, "neurons")) != nullptr;
    for (int il = 0; il < n_layer; ++il) {
      const LayerWeights& dense = model.w.layers[size_t(il)];
      LayerWeights& l = e.layers[size_t(il)];
      const std::string at = "layer " + std::to_string(il) + ": ";
      for (const FfnSlot& s : kSlots) {
        const GgufTensorInfo* t = g->find_tensor(layer_tensor(il, s.name));
        const bool bias = s.view == &LayerWeights::ffn_down_b;
        if (!t) {
          if (!bias) return refuse(at + "no " + s.name);
          l.ffn_down_b = TensorView{};
          continue;
        }
        // Matrices keep the dense model's type; the bias is f32 [n_embd].
        const bool fits = bias ? t->view.dtype == DType::F32 && t->view.n_dims == 1 && t->view.numel() == n_embd
                               : t->view.dtype == (dense.*s.view).dtype && t->view.n_dims == 2;
        if (!fits) return refuse(at + s.name + " " + t->view.shape_str() + " does not fit the model");
        // Copied out: the file is unmapped when this returns.
        const auto* b = static_cast<const uint8_t*>(t->view.data);
        e.buffers.emplace_back(b, b + t->view.nbytes());
        TensorView v = t->view;
        v.data = e.buffers.back().data();
        l.*s.view = v;
      }
      const int64_t k = l.ffn_gate.shape[0];
      if (l.ffn_gate.shape[1] != n_embd || l.ffn_up.shape[0] != k || l.ffn_up.shape[1] != n_embd ||
          l.ffn_down.shape[0] != n_embd || l.ffn_down.shape[1] != k || k < 1 || k > model.hp.n_ff)
        return refuse(at + "FFN shapes do not fit the model");
      if (has_neurons) {
        const GgufTensorInfo* t = g->find_tensor(layer_tensor(il, "neurons"));
        if (!t || t->view.dtype != DType::I32 || t->view.numel() != k) return refuse(at + "no list of its neurons");
        const auto* n = static_cast<const int32_t*>(t->view.data);
        e.neurons.emplace_back(n, n + k);
        for (int32_t id : e.neurons.back())
          if (id < 0 || id >= model.hp.n_ff) return refuse(at + "a neuron id outside the FFN");
      }
    }
    return e;
  } catch (const std::exception& err) {
    return refuse(err.what());
  }
}

void ExpertCheckpoint::remove() const {
  std::error_code ec;
  fs::remove_all(dir_, ec);  // best effort: a leftover directory only costs disk
}

}  // namespace mf
