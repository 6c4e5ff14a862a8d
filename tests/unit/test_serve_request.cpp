// Serving building blocks without HTTP: request parsing and validation, chat templates, the
// text stream that applies stop strings and holds back partial UTF-8, metrics text.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "core/error.h"
#include "serve/api_error.h"
#include "serve/chat_template.h"
#include "serve/metrics.h"
#include "serve/prepare.h"
#include "serve/request.h"
#include "serve/text_stream.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"

namespace mf::serve {
namespace {

// The ApiError a body produces (status, param), or status 0 when it parses.
std::pair<int, std::string> error_of(const std::string& body, Endpoint e = Endpoint::Completions) {
  try {
    parse_request(body, e);
  } catch (const ApiError& err) {
    return {err.status, err.param};
  }
  return {0, ""};
}

TEST(ServeRequest, ParsesCompletionFields) {
  ApiRequest r = parse_request(
      R"({"model":"m","prompt":"hi","max_tokens":5,"temperature":0,"top_p":0.5,"seed":-3,"stop":["a","b"],"stream":true,
          "stream_options":{"include_usage":true},"n":1,"user":"u","logprobs":null,"moeforge":{"expert":"code"}})",
      Endpoint::Completions);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "hi");
  EXPECT_EQ(*r.max_tokens, 5);
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_EQ(r.top_p, 0.5f);
  EXPECT_EQ(*r.seed, uint64_t(-3));
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.expert, "code");
  // Defaults: OpenAI's 16 tokens for completions, none (the context) for chat.
  EXPECT_EQ(*parse_request(R"({"prompt":"x"})", Endpoint::Completions).max_tokens, 16);
  EXPECT_FALSE(parse_request(R"({"messages":[{"role":"user","content":"x"}]})", Endpoint::Chat).max_tokens);
  EXPECT_EQ(*parse_request(R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":7})", Endpoint::Chat).max_tokens, 7);
}

TEST(ServeRequest, PromptForms) {
  EXPECT_EQ(parse_request(R"({"prompt":["one"]})", Endpoint::Completions).prompt, "one");
  ApiRequest t = parse_request(R"({"prompt":[1,2,3]})", Endpoint::Completions);
  EXPECT_TRUE(t.prompt_is_tokens);
  EXPECT_EQ(t.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(parse_request(R"({"prompt":[[4,5]]})", Endpoint::Completions).prompt_tokens, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(error_of(R"({"prompt":["a","b"]})"), std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(error_of(R"({"prompt":[]})").second, "prompt");
  EXPECT_EQ(error_of(R"({"prompt":[1,-2]})").second, "prompt");
  EXPECT_EQ(error_of(R"({"prompt":{}})").second, "prompt");
  EXPECT_EQ(error_of(R"({})").second, "prompt");
}

TEST(ServeRequest, ChatMessages) {
  ApiRequest r = parse_request(
      R"({"messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                      {"role":"assistant","content":null}]})",
      Endpoint::Chat);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(error_of(R"({"messages":[]})", Endpoint::Chat).second, "messages");
  EXPECT_EQ(error_of(R"({"messages":"hi"})", Endpoint::Chat).second, "messages");
  EXPECT_EQ(error_of(R"({"messages":[{"content":"x"}]})", Endpoint::Chat).second, "messages[0].role");
  EXPECT_EQ(error_of(R"({"messages":[{"role":"wizard","content":"x"}]})", Endpoint::Chat).second, "messages[0].role");
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", Endpoint::Chat).second,
            "messages[0].content");
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":5}]})", Endpoint::Chat).second, "messages[0].content");
}

TEST(ServeRequest, WrongTypesAndRangesNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"prompt":"x","max_tokens":"5"})", "max_tokens"},   {R"({"prompt":"x","max_tokens":0})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":1.5})", "max_tokens"},   {R"({"prompt":"x","temperature":"hot"})", "temperature"},
      {R"({"prompt":"x","temperature":3})", "temperature"},   {R"({"prompt":"x","top_p":1.5})", "top_p"},
      {R"({"prompt":"x","seed":"1"})", "seed"},               {R"({"prompt":"x","stop":5})", "stop"},
      {R"({"prompt":"x","stop":["a","b","c","d","e"]})", "stop"}, {R"({"prompt":"x","stop":[""]})", "stop"},
      {R"({"prompt":"x","n":2})", "n"},                       {R"({"prompt":"x","n":0})", "n"},
      {R"({"prompt":"x","stream":"yes"})", "stream"},         {R"({"prompt":"x","stream_options":{}})", "stream_options"},
      {R"({"prompt":"x","model":7})", "model"},               {R"({"prompt":"x","logprobs":3})", "logprobs"},
      {R"({"prompt":"x","echo":true})", "echo"},              {R"({"prompt":"x","best_of":2})", "best_of"},
      {R"({"prompt":"x","presence_penalty":1})", "presence_penalty"}, {R"({"prompt":"x","logit_bias":{"1":2}})", "logit_bias"},
      {R"({"prompt":"x","moeforge":"code"})", "moeforge"},    {R"({"prompt":"x","moeforge":{"expert":1}})", "moeforge.expert"},
      {R"({"prompt":"x","max_tokens":99999999999999999999})", "max_tokens"},
  };
  for (auto [body, param] : cases) {
    auto [status, p] = error_of(body);
    EXPECT_EQ(status, 400) << body;
    EXPECT_EQ(p, param) << body;
  }
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", Endpoint::Chat).second, "tools");
}

TEST(ServeRequest, MalformedAndHostileBodies) {
  for (const char* body : {"", "{", "[1,2]", "\"str\"", "{\"prompt\":\"x\",}", "nul", "{\"prompt\":\"\xff\"}", "1e999", "{\"prompt\":1e999}"})
    EXPECT_EQ(error_of(body).first, 400) << body;
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(error_of("{\"prompt\":" + deep + "}").first, 400);
  EXPECT_EQ(json_depth(R"({"a":"[[[[{{{{","b":[{}]})"), 3);  // brackets inside strings do not count
  EXPECT_EQ(json_depth(R"({"a":"\"[[["})"), 1);
}

// In-process fuzzing of the parser: whatever the bytes, parse_request returns or throws ApiError.
TEST(ServeRequest, MutatedBodiesOnlyEverThrowApiError) {
  const std::vector<std::string> seeds = {
      R"({"model":"m","prompt":"hi","max_tokens":5,"temperature":0.5,"top_p":0.9,"seed":3,"stop":["a"],"stream":true,"stream_options":{"include_usage":true}})",
      R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"}]},{"role":"assistant","content":null}],"n":1,"moeforge":{"expert":"x"}})",
      R"({"prompt":[[1,2,3]],"logprobs":false,"echo":false,"best_of":1,"tools":[],"response_format":{"type":"text"}})"};
  const char* tokens[] = {"{", "}", "[", "]", "\"", ",", ":", "null", "true", "1e999", "-1", "0.5", "\\u0000", "\xff", "[[[[", "\"\\"};
  std::mt19937 rng(7);
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    for (int k = 1 + int(rng() % 4); k > 0 && !s.empty(); --k) {
      const size_t pos = rng() % s.size();
      switch (rng() % 4) {
        case 0: s[pos] = char(rng() % 256); break;
        case 1: s.erase(pos, 1 + rng() % 6); break;
        case 2: s.insert(pos, tokens[rng() % std::size(tokens)]); break;
        case 3: s.resize(pos); break;
      }
    }
    for (Endpoint e : {Endpoint::Completions, Endpoint::Chat}) {
      try {
        parse_request(s, e);
        ++parsed;
      } catch (const ApiError& err) {
        ASSERT_GE(err.status, 400);
        ASSERT_LT(err.status, 500) << s;
      } catch (const std::exception& other) {
        FAIL() << "non-API exception '" << other.what() << "' for " << s;
      }
    }
  }
  EXPECT_GT(parsed, 0);
}

TEST(ServeErrors, OpenAIShape) {
  ApiError e(429, "busy", "", "queue_full");
  auto j = e.to_json();
  EXPECT_EQ(j["error"]["message"], "busy");
  EXPECT_EQ(j["error"]["type"], "rate_limit_error");
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_EQ(j["error"]["code"], "queue_full");
  EXPECT_EQ(ApiError(400, "x", "prompt").to_json()["error"]["type"], "invalid_request_error");
}

TEST(ServeChat, DetectsKnownTemplates) {
  EXPECT_EQ(detect_chat_format(""), ChatFormat::Default);
  EXPECT_EQ(detect_chat_format("{% for m in messages %}<|im_start|>{{ m.role }}..."), ChatFormat::ChatML);
  EXPECT_EQ(detect_chat_format("<|start_header_id|>"), ChatFormat::Llama3);
  EXPECT_EQ(detect_chat_format("{{ '[INST] ' + content }}"), ChatFormat::Llama2);
  EXPECT_EQ(detect_chat_format("<|user|>\n"), ChatFormat::Zephyr);
  EXPECT_EQ(detect_chat_format("{{ something unknown }}"), ChatFormat::Default);
  EXPECT_EQ(parse_chat_format("chatml"), ChatFormat::ChatML);
  EXPECT_EQ(parse_chat_format("jinja"), ChatFormat::Jinja);
  EXPECT_THROW(parse_chat_format("jinja2"), Error);
}

// The model's own template is used when it renders; an unsupported construct falls back to the
// detected format with a warning; raise_exception reaches the caller as TemplateException.
TEST(ServeChat, ChoosesTheModelsJinjaTemplate) {
  const std::string chatml =
      "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] | trim + '<|im_end|>\\n' }}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  std::string warning;
  ChatRenderer r = make_chat_renderer(chatml, {}, "", &warning);
  EXPECT_EQ(r.format, ChatFormat::Jinja);
  EXPECT_TRUE(warning.empty());
  EXPECT_EQ(r.render({{"user", " hi "}}).text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_TRUE(r.render({{"user", "x"}}).stop.empty());

  // Unsupported construct: the detected format, and a one-line reason.
  ChatRenderer f = make_chat_renderer("{% include 'x' %}<|im_start|>", {}, "", &warning);
  EXPECT_EQ(f.format, ChatFormat::ChatML);
  EXPECT_NE(warning.find("include"), std::string::npos) << warning;
  EXPECT_EQ(warning.find('\n'), std::string::npos);
  warning.clear();
  EXPECT_EQ(make_chat_renderer("{{ messages|frobnicate }}", {}, "", &warning).format, ChatFormat::Default);
  EXPECT_NE(warning.find("frobnicate"), std::string::npos) << warning;

  // A forced format ignores the template; "jinja" requires a usable one.
  EXPECT_EQ(make_chat_renderer(chatml, {}, "llama3", nullptr).format, ChatFormat::Llama3);
  EXPECT_EQ(make_chat_renderer(chatml, {}, "jinja", nullptr).format, ChatFormat::Jinja);
  EXPECT_THROW(make_chat_renderer("", {}, "jinja", nullptr), Error);
  EXPECT_THROW(make_chat_renderer("{% include 'x' %}", {}, "jinja", nullptr), Error);
  EXPECT_EQ(make_chat_renderer("", {}, "", nullptr).format, ChatFormat::Default);

  // A template that refuses a conversation is still chosen; the refusal carries its message.
  ChatRenderer strict = make_chat_renderer(
      "{% if messages[0]['role'] != 'system' %}{{ raise_exception('need a system message') }}{% endif %}{{ bos_token }}ok", {"<s>", "</s>", "", ""}, "",
      &warning);
  EXPECT_EQ(strict.format, ChatFormat::Jinja);
  EXPECT_EQ(strict.render({{"system", "s"}, {"user", "u"}}).text, "<s>ok");
  try {
    strict.render({{"user", "u"}});
    ADD_FAILURE() << "no exception";
  } catch (const jinja::TemplateException& e) {
    EXPECT_EQ(std::string(e.what()), "need a system message");
  }
}

// prepare_request: messages the model's template rejects are a 400 carrying its message.
TEST(ServeChat, TemplateRejectionIsA400) {
  auto model = load_model("models/default");
  ServingContext ctx;
  ctx.model = model.get();
  ctx.model_id = "m";
  ctx.n_ctx = 64;
  ChatRenderer r = make_chat_renderer(
      "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
      "{{ m.content }}{% endfor %}",
      {}, "jinja", nullptr);
  ctx.chat_format = r.format;
  ctx.chat_jinja = r.jinja;
  ApiRequest ok = parse_request(R"({"messages":[{"role":"user","content":"hello"}],"max_tokens":2})", Endpoint::Chat);
  EXPECT_EQ(prepare_request(ok, ctx).job.prompt, model->require_tokenizer().encode("hello", true, true));
  ApiRequest bad = parse_request(R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]})", Endpoint::Chat);
  try {
    prepare_request(bad, ctx);
    ADD_FAILURE() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(std::string(e.what()), "System role not supported");
    EXPECT_EQ(e.param, "messages");
  }
}

// A template that writes bos_token itself gets no second BOS from the tokenizer.
TEST(ServeChat, NoDoubleBos) {
  TokenizerSpec spec = load_hf_tokenizer_spec(test::shared_dir() + "/models/tiny-llama-a/tokenizer.json");
  spec.add_bos = true;
  ASSERT_GE(spec.bos_id, 0);
  auto tok = make_tokenizer(spec);
  const std::string bos = spec.tokens[size_t(spec.bos_id)];
  std::vector<int32_t> plain = encode_chat_prompt(*tok, "hello there");
  std::vector<int32_t> with_bos = encode_chat_prompt(*tok, bos + "hello there");
  ASSERT_FALSE(plain.empty());
  EXPECT_EQ(plain[0], spec.bos_id);
  EXPECT_EQ(plain, with_bos);
  EXPECT_EQ(std::count(with_bos.begin(), with_bos.end(), spec.bos_id), 1);
  EXPECT_EQ(chat_template_tokens(*tok).bos_token, bos);
}

TEST(ServeChat, RendersEachFormat) {
  std::vector<ChatMessage> m = {{"system", "S"}, {"user", "U1"}, {"assistant", "A1"}, {"user", "U2"}};
  ChatPrompt d = render_chat(ChatFormat::Default, m);
  EXPECT_EQ(d.text, "S\n\nUser: U1\nAssistant: A1\nUser: U2\nAssistant:");
  EXPECT_EQ(d.stop, std::vector<std::string>{"\nUser:"});
  EXPECT_EQ(render_chat(ChatFormat::ChatML, m).text,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatFormat::Llama3, {{"user", "U"}}).text,
            "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(ChatFormat::Llama2, m).text, "[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1 </s><s>[INST] U2 [/INST]");
  EXPECT_EQ(render_chat(ChatFormat::Zephyr, {{"user", "U"}}).text, "<|user|>\nU</s>\n<|assistant|>\n");
}

TEST(ServeText, StopStringsAcrossPieces) {
  TextStream t({"STOP", "\nUser:"});
  std::string out;
  for (const char* piece : {"Hello", " wor", "ld S", "T", "OP and more"}) out += t.push(piece);
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(out, "Hello world ");
  EXPECT_EQ(t.push("later"), "");
  EXPECT_EQ(t.flush(), "");

  TextStream u({"\nUser:"});
  EXPECT_EQ(u.push("a\n"), "a");   // "\n" may begin the stop string: held back
  EXPECT_EQ(u.push("Us"), "");
  EXPECT_EQ(u.push("ually"), "\nUsually");  // it did not
  EXPECT_FALSE(u.stopped());
  EXPECT_EQ(u.push("\nUser: hi"), "");
  EXPECT_TRUE(u.stopped());
  EXPECT_EQ(u.text(), "a\nUsually");
}

TEST(ServeText, HoldsBackPartialUtf8) {
  TextStream t;
  const std::string euro = "\xE2\x82\xAC";  // U+20AC, 3 bytes
  EXPECT_EQ(t.push("a" + euro.substr(0, 1)), "a");
  EXPECT_EQ(t.push(euro.substr(1, 1)), "");
  EXPECT_EQ(t.push(euro.substr(2, 1) + "b"), euro + "b");
  EXPECT_EQ(t.push("\xF0\x9F"), "");
  EXPECT_EQ(t.flush(), "\xF0\x9F");  // the end: whatever is left goes out
  EXPECT_EQ(utf8_complete_prefix("ab\xC3"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xC3\xA9"), 4u);
  EXPECT_EQ(utf8_complete_prefix("\x80\x80"), 2u);  // stray continuation bytes are not waited for
}

TEST(ServeMetrics, PrometheusText) {
  Metrics m;
  m.request("/v1/completions", 200, 0.2);
  m.request("/v1/completions", 429, 0.001);
  m.routed("code", "code/1", false);
  m.tokens(10, 5);
  Gauges g;
  g.queue_depth = 3;
  std::string text = m.render(g);
  EXPECT_NE(text.find("moeforge_requests_total{endpoint=\"/v1/completions\",status=\"429\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("moeforge_request_duration_seconds_bucket{endpoint=\"/v1/completions\",le=\"0.25\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("moeforge_request_duration_seconds_count{endpoint=\"/v1/completions\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("moeforge_routed_prompts_total{domain=\"code\",expert=\"code/1\",forced=\"false\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("moeforge_prompt_tokens_total 10\n"), std::string::npos);
  EXPECT_NE(text.find("moeforge_queue_depth 3\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE moeforge_time_to_first_token_seconds histogram\n"), std::string::npos);
}

}  // namespace
}  // namespace mf::serve
