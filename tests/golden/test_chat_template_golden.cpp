// Chat templates rendered by tokenizer/jinja against Hugging Face transformers'
// apply_chat_template (goldens from scripts/make_chat_template_goldens.py).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tokenizer/chat_template.h"

namespace {

using nlohmann::json;

const std::string kDir = "tests/golden/data/chat_templates/";

TEST(ChatTemplateGolden, MatchesTransformers) {
  const json g = json::parse(mf::test::read_file(kDir + "goldens.json"));
  ASSERT_FALSE(g["cases"].empty());
  int checked = 0, errors = 0;
  for (const json& c : g["cases"]) {
    const std::string file = c["template"];
    const std::string conv = c["conversation"];
    const bool gen = c["add_generation_prompt"];
    SCOPED_TRACE(file + " / " + conv + (gen ? " / add_generation_prompt" : ""));
    mf::ChatTemplateTokens tokens;
    const json& st = g["special_tokens"][file];
    auto tok = [&](const char* k) { return st[k].is_string() ? st[k].get<std::string>() : std::string(); };
    tokens.bos_token = tok("bos_token");
    tokens.eos_token = tok("eos_token");
    tokens.unk_token = tok("unk_token");
    tokens.pad_token = tok("pad_token");
    std::vector<mf::ChatTurn> messages;
    for (const json& m : g["conversations"][conv]) messages.push_back({m["role"], m["content"]});
    const mf::ChatTemplate tmpl(mf::test::read_file(kDir + file));
    if (c.contains("error")) {
      try {
        tmpl.apply(messages, gen, tokens);
        ADD_FAILURE() << "expected the template to raise: " << c["error"];
      } catch (const mf::jinja::TemplateException& e) {
        EXPECT_EQ(std::string(e.what()), c["error"].get<std::string>());
      }
      ++errors;
    } else {
      EXPECT_EQ(json(tmpl.apply(messages, gen, tokens)).dump(), json(c["text"]).dump());
    }
    ++checked;
  }
  EXPECT_EQ(checked, int(g["cases"].size()));
  EXPECT_GT(errors, 0);
}

// Every fixture template parses (the goldens cover rendering).
TEST(ChatTemplateGolden, FixturesParse) {
  for (const char* f : {"smollm2-135m-instruct.jinja", "gemma-3-it.jinja", "qwen2.5-instruct.jinja", "llama-3.1-instruct.jinja",
                        "mistral-7b-instruct-v0.2.jinja"})
    EXPECT_NO_THROW(mf::ChatTemplate(mf::test::read_file(kDir + f))) << f;
}

}  // namespace
