// A SentencePiece .model run by libsentencepiece itself (its normalizer and unigram/BPE
// search included), with a spec built from the model's pieces so it can go into GGUF.
#include <sentencepiece_processor.h>

#include "core/error.h"
#include "tokenizer/hf_config.h"
#include "tokenizer/sentencepiece_proto.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace mf {

namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(TokenizerSpec spec, std::unique_ptr<sentencepiece::SentencePieceProcessor> sp)
      : Tokenizer(std::move(spec)), sp_(std::move(sp)),
        // libsentencepiece matches user-defined pieces itself; control pieces only on request.
        specials_(spec_, {}, {TokenType::Control}) {}

  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<int32_t> out;
    if (add_special && spec_.add_bos) out.push_back(spec_.bos_id);
    for (const auto& frag : specials_.split(text, parse_special)) {
      if (frag.id >= 0) {
        out.push_back(frag.id);
        continue;
      }
      std::vector<int> ids;
      const auto status = sp_->Encode(std::string(frag.text), &ids);
      if (!status.ok()) fail("sentencepiece: encode failed: ", status.ToString());
      out.insert(out.end(), ids.begin(), ids.end());
    }
    if (add_special && spec_.add_eos) out.push_back(spec_.eos_id);
    return out;
  }

  std::string token_to_piece(int32_t id) const override {
    check(id);
    if (sp_->IsControl(id) || sp_->IsUnused(id)) return "";
    const std::string& p = spec_.tokens[id];
    if (sp_->IsByte(id)) {
      const int b = parse_byte_token(p);
      if (b >= 0) return std::string(1, char(b));
    }
    std::string out;
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
        out += ' ';
        i += kSpmSpace.size();
      } else {
        out += p[i++];
      }
    }
    return out;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    for (int32_t id : ids) check(id);
    std::string out;
    const auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &out);
    if (!status.ok()) fail("sentencepiece: decode failed: ", status.ToString());
    return out;
  }

 private:
  void check(int32_t id) const {
    if (id < 0 || id >= n_vocab()) fail("tokenizer: token id ", id, " out of range [0, ", n_vocab(), ")");
  }

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  SpecialTokenMatcher specials_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path) {
  const std::string bytes = read_whole_file(path, "SentencePiece model");
  const SentencePieceModelInfo info = parse_sentencepiece_model(bytes, path);
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->LoadFromSerializedProto(bytes);
  if (!status.ok()) fail(path, ": cannot load SentencePiece model: ", status.ToString());
  if (sp->GetPieceSize() != int(info.pieces.size()))
    fail(path, ": SentencePiece reports ", sp->GetPieceSize(), " pieces, the file holds ", info.pieces.size());

  TokenizerSpec spec;
  spec.model = "llama";
  for (const auto& p : info.pieces) {
    spec.tokens.push_back(p.text);
    spec.scores.push_back(p.score);
    spec.types.push_back(p.type);
  }
  spec.bos_id = sp->bos_id();
  spec.eos_id = sp->eos_id();
  spec.unk_id = sp->unk_id();
  spec.pad_id = sp->pad_id();
  spec.add_bos = spec.bos_id >= 0;  // Llama-style models prepend BOS unless the config says otherwise
  spec.add_space_prefix = info.add_dummy_prefix;
  const HfTokenizerConfig cfg = read_hf_tokenizer_config(parent_dir(path));
  if (cfg.add_bos_token) spec.add_bos = *cfg.add_bos_token && spec.bos_id >= 0;
  if (cfg.add_eos_token) spec.add_eos = *cfg.add_eos_token && spec.eos_id >= 0;
  spec.chat_template = cfg.chat_template;
  try {
    validate_tokenizer_spec(spec);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
  return std::make_unique<SentencePieceTokenizer>(std::move(spec), std::move(sp));
}

}  // namespace mf
