#include "eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "eval/generate_until.h"
#include "eval/loglikelihood.h"

namespace mf::eval {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Characters (code points) of UTF-8 text: lm-eval's acc_norm divides by len(str).
int64_t utf8_chars(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Documents of a task under --limit (per MMLU subject).
std::vector<size_t> selected_docs(const McTask& task, int64_t limit) {
  std::vector<size_t> out;
  std::map<std::string, int64_t> taken;
  for (size_t i = 0; i < task.docs.size(); ++i)
    if (limit <= 0 || taken[task.docs[i].subject]++ < limit) out.push_back(i);
  return out;
}

}  // namespace

EncodedPair encode_pair(const Tokenizer& tok, const std::string& context, const std::string& continuation) {
  size_t cut = context.size();
  while (cut > 0 && std::string_view(" \t\n\r\f\v").find(context[cut - 1]) != std::string_view::npos) --cut;
  const std::string ctx = context.substr(0, cut), cont = context.substr(cut) + continuation;
  EncodedPair p;
  p.context = tok.encode(ctx, /*add_special=*/true);
  std::vector<int32_t> whole = tok.encode(ctx + cont, /*add_special=*/true);
  if (whole.size() > p.context.size()) p.continuation.assign(whole.begin() + std::ptrdiff_t(p.context.size()), whole.end());
  if (p.context.empty()) fail("an empty context (the tokenizer adds no BOS)");
  if (p.continuation.empty()) fail("the continuation '", continuation, "' encodes to no tokens after its context");
  return p;
}

Metric mean_with_stderr(const std::vector<double>& x) {
  Metric m;
  if (x.empty()) return m;
  double sum = 0;
  for (double v : x) sum += v;
  m.value = sum / double(x.size());
  if (x.size() > 1) {
    double ss = 0;
    for (double v : x) ss += (v - m.value) * (v - m.value);
    m.stderr_ = std::sqrt(ss / double(x.size() - 1)) / std::sqrt(double(x.size()));
  }
  return m;
}

size_t argmax_index(const std::vector<double>& x) {
  return size_t(std::max_element(x.begin(), x.end()) - x.begin());  // the first maximum
}

TaskResult evaluate_mc(const Model& model, ThreadPool& pool, const McTask& task, const EvalOptions& options,
                       const PromptRouter& route, const EvalProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const Tokenizer& tok = model.require_tokenizer();
  TaskResult r;
  r.task = task.name;
  r.kind = "multiple_choice";
  r.shots = options.shots >= 0 ? options.shots : task.default_shots;
  const std::vector<size_t> docs = selected_docs(task, options.limit);
  if (docs.empty()) fail(task.name, ": no documents to evaluate");

  std::vector<LlRequest> requests(docs.size());
  std::vector<std::string> route_names(docs.size());
  for (size_t k = 0; k < docs.size(); ++k) {
    const McDoc& d = task.docs[docs[k]];
    const std::string context = mc_context(task, docs[k], r.shots);
    for (const std::string& choice : d.choices) {
      EncodedPair p = encode_pair(tok, context, task.target_delimiter + choice);
      if (requests[k].continuations.empty()) requests[k].context = std::move(p.context);
      else if (p.context != requests[k].context) fail(d.id, ": choices encode the context differently");
      requests[k].continuations.push_back(std::move(p.continuation));
    }
    const RouteChoice rc = route ? route(requests[k].context) : RouteChoice{};
    requests[k].on = rc.placement();
    route_names[k] = rc.name;
  }
  // Documents routed alike run next to each other (their few-shot prefixes can be shared).
  std::vector<size_t> order(docs.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return requests[a].on < requests[b].on; });
  std::vector<LlRequest> sorted(docs.size());
  for (size_t k = 0; k < order.size(); ++k) sorted[k] = std::move(requests[order[k]]);

  ScoreOptions so;
  so.n_ctx = options.n_ctx;
  so.batch_slots = options.batch_slots;
  so.numerics = options.numerics;
  ScoreStats stats;
  const std::vector<LlResult> scored = score_loglikelihood(
      model, pool, sorted, so, [&](int64_t done) { if (progress) progress(done, int64_t(docs.size())); }, &stats);
  std::vector<LlResult> results(docs.size());
  for (size_t k = 0; k < order.size(); ++k) results[order[k]] = scored[k];

  std::vector<double> acc, acc_norm;
  std::map<std::string, std::vector<double>> by_group;
  for (size_t k = 0; k < docs.size(); ++k) {
    const McDoc& d = task.docs[docs[k]];
    const LlResult& res = results[k];
    std::vector<double> norm(res.loglikelihood.size());
    for (size_t c = 0; c < norm.size(); ++c) norm[c] = res.loglikelihood[c] / double(std::max<int64_t>(1, utf8_chars(d.choices[c])));
    const size_t pred = argmax_index(res.loglikelihood), pred_norm = argmax_index(norm);
    acc.push_back(pred == size_t(d.gold));
    acc_norm.push_back(pred_norm == size_t(d.gold));
    if (!d.subject.empty()) {
      by_group[d.subject].push_back(acc.back());
      by_group[mmlu_category(d.subject)].push_back(acc.back());
    }
    r.routes[route_names[k]]++;
    r.records.push_back({{"id", d.id}, {"task", task.name}, {"gold", d.gold}, {"pred", pred}, {"pred_norm", pred_norm},
                         {"acc", acc.back()}, {"acc_norm", acc_norm.back()}, {"loglikelihoods", res.loglikelihood},
                         {"is_greedy", res.is_greedy}, {"context_tokens", res.context_tokens}, {"route", route_names[k]}});
  }
  r.n = int64_t(docs.size());
  r.metrics["acc"] = mean_with_stderr(acc);
  r.metrics["acc_norm"] = mean_with_stderr(acc_norm);
  if (!by_group.empty()) {
    std::vector<double> subject_acc;
    for (const auto& [g, v] : by_group) {
      r.groups[g] = mean_with_stderr(v);
      if (g != "stem" && g != "humanities" && g != "social_sciences" && g != "other") subject_acc.push_back(r.groups[g].value);
    }
    r.groups["macro"] = Metric{mean_with_stderr(subject_acc).value, 0};
  }
  r.tokens_run = stats.tokens_run;
  r.tokens_reused = stats.tokens_reused;
  r.seconds = seconds_since(t0);
  return r;
}

TaskResult evaluate_generation(const Model& model, ThreadPool& pool, const GenTask& task, const EvalOptions& options,
                               const PromptRouter& route, const EvalProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const Tokenizer& tok = model.require_tokenizer();
  TaskResult r;
  r.task = task.name;
  r.kind = "generate_until";
  r.shots = options.shots >= 0 ? options.shots : task.default_shots;
  const size_t n = options.limit > 0 ? std::min(task.docs.size(), size_t(options.limit)) : task.docs.size();
  std::vector<GenRequest> requests(n);
  std::vector<std::string> route_names(n);
  const auto draws = lm_eval_fewshot_draws(task.fewshot_pool.size(), n, r.shots);
  for (size_t i = 0; i < n; ++i) {
    requests[i].prompt = tok.encode(gen_context(task, i, draws[i]), /*add_special=*/true);
    const RouteChoice rc = route ? route(requests[i].prompt) : RouteChoice{};
    requests[i].on = rc.placement();
    route_names[i] = rc.name;
  }
  GenOptions go;
  go.until = task.until;
  go.max_tokens = options.max_gen_tokens > 0 ? options.max_gen_tokens : task.max_tokens;
  go.n_ctx = options.n_ctx;
  go.batch_slots = options.batch_slots;
  go.numerics = options.numerics;
  int64_t tokens_run = 0;
  const std::vector<GenResult> out = generate_until(
      model, pool, requests, go, [&](int64_t done) { if (progress) progress(done, int64_t(n)); }, &tokens_run);
  std::vector<double> strict, flexible;
  int64_t generated = 0;
  for (size_t i = 0; i < n; ++i) {
    const GenDoc& d = task.docs[i];
    const std::string s = gsm8k_strict_answer(out[i].text), f = gsm8k_flexible_answer(out[i].text);
    strict.push_back(s == d.answer);
    flexible.push_back(f == d.answer);
    generated += out[i].tokens;
    r.routes[route_names[i]]++;
    r.records.push_back({{"id", d.id}, {"task", task.name}, {"gold", d.answer}, {"strict", s}, {"flexible", f},
                         {"exact_match_strict", strict.back()}, {"exact_match_flexible", flexible.back()},
                         {"generated", out[i].text}, {"generated_tokens", out[i].tokens},
                         {"stop_reason", out[i].stop_reason}, {"route", route_names[i]}});
  }
  r.n = int64_t(n);
  r.metrics["exact_match_strict"] = mean_with_stderr(strict);
  r.metrics["exact_match_flexible"] = mean_with_stderr(flexible);
  r.metrics["generated_tokens"] = Metric{double(generated), 0};
  r.tokens_run = tokens_run;
  r.seconds = seconds_since(t0);
  return r;
}

std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> rolling_windows(const std::vector<int32_t>& tokens,
                                                                                   int32_t prefix, int64_t max_len) {
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> out;
  const int64_t n = int64_t(tokens.size());
  if (n == 0) return out;
  if (max_len < 2) fail("a rolling window needs at least 2 tokens");
  const auto at = [&](int64_t a, int64_t b) { return std::vector<int32_t>(tokens.begin() + a, tokens.begin() + b); };
  const int64_t first = std::min(max_len, n);
  out.emplace_back(std::vector<int32_t>{prefix}, at(0, first));  // [prefix] + tokens[:first-1] predicts tokens[:first]
  for (int64_t done = first; done < n;) {
    const int64_t pred = std::min(n - done, max_len), end = done + pred;
    // The window tokens[end-max_len-1 : end-1] predicts its last `pred` shifted by one; the
    // tokens before those are its context (disjoint windows).
    out.emplace_back(at(std::max<int64_t>(0, end - max_len - 1), end - pred), at(end - pred, end));
    done = end;
  }
  return out;
}

TaskResult evaluate_wikitext(const Model& model, ThreadPool& pool, const std::string& name, const std::string& text,
                             const EvalOptions& options, const PromptRouter& route, const EvalProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const Tokenizer& tok = model.require_tokenizer();
  TaskResult r;
  r.task = name;
  r.kind = "loglikelihood_rolling";
  // Articles start at a top-level heading line " = Title = " (not " = = Section = = ").
  std::vector<std::string> articles;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    end = end == std::string::npos ? text.size() : end + 1;
    const std::string_view line(text.data() + pos, end - pos);
    const bool heading = line.starts_with(" = ") && !line.starts_with(" = = ") && line.find(" = \n") != std::string::npos;
    if (heading || articles.empty()) articles.emplace_back();
    articles.back().append(line);
    pos = end;
  }
  std::erase_if(articles, [](const std::string& a) { return a.find_first_not_of(" \n") == std::string::npos; });
  if (options.limit > 0 && int64_t(articles.size()) > options.limit) articles.resize(size_t(options.limit));
  if (articles.empty()) fail(name, ": no text to score");
  const int64_t window = options.n_ctx > 0 ? options.n_ctx : std::min<int64_t>(model.hp.n_ctx_train, 2048);
  const int32_t prefix = tok.spec().bos_id >= 0 ? tok.spec().bos_id : tok.spec().eos_id;
  if (prefix < 0) fail("the tokenizer has neither BOS nor EOS to start a window with");

  std::vector<LlRequest> requests;
  std::vector<size_t> article_of;
  std::vector<std::string> article_route;
  int64_t words = 0, bytes = 0;
  for (size_t a = 0; a < articles.size(); ++a) {
    const std::vector<int32_t> ids = tok.encode(articles[a], /*add_special=*/false);
    const RouteChoice rc = route ? route(ids) : RouteChoice{};
    r.routes[rc.name]++;
    article_route.push_back(rc.name);
    for (auto& [ctx, cont] : rolling_windows(ids, prefix, window)) {
      requests.push_back(LlRequest{std::move(ctx), {std::move(cont)}, rc.placement()});
      article_of.push_back(a);
    }
    // lm-eval: words = len(re.split(r"\s+", doc)), bytes = len(doc.encode("utf-8")).
    int64_t w = 1;
    for (size_t i = 0; i < articles[a].size();) {
      if (std::isspace(static_cast<unsigned char>(articles[a][i]))) {
        while (i < articles[a].size() && std::isspace(static_cast<unsigned char>(articles[a][i]))) ++i;
        ++w;
      } else {
        ++i;
      }
    }
    words += w;
    bytes += int64_t(articles[a].size());
  }
  ScoreOptions so;
  so.n_ctx = window;
  so.batch_slots = std::max(1, options.batch_slots / 4);  // long windows: fewer slots of KV memory
  so.numerics = options.numerics;
  ScoreStats stats;
  const auto scored = score_loglikelihood(
      model, pool, requests, so, [&](int64_t done) { if (progress) progress(done, int64_t(requests.size())); }, &stats);
  double ll = 0;
  int64_t tokens = 0;
  std::vector<double> article_ll(articles.size(), 0.0);
  for (size_t i = 0; i < scored.size(); ++i) {
    ll += scored[i].loglikelihood[0];
    article_ll[article_of[i]] += scored[i].loglikelihood[0];
    tokens += int64_t(requests[i].continuations[0].size());
  }
  for (size_t a = 0; a < articles.size(); ++a)
    r.records.push_back({{"id", name + "/" + std::to_string(a)}, {"task", name}, {"loglikelihood", article_ll[a]},
                         {"bytes", articles[a].size()}, {"route", article_route[a]}});
  r.n = int64_t(articles.size());
  r.metrics["word_perplexity"] = Metric{std::exp(-ll / double(words)), 0};
  r.metrics["byte_perplexity"] = Metric{std::exp(-ll / double(bytes)), 0};
  r.metrics["bits_per_byte"] = Metric{-ll / double(bytes) / std::log(2.0), 0};
  r.metrics["token_perplexity"] = Metric{std::exp(-ll / double(tokens)), 0};
  r.metrics["tokens"] = Metric{double(tokens), 0};
  r.metrics["window"] = Metric{double(window), 0};
  r.tokens_run = stats.tokens_run;
  r.tokens_reused = stats.tokens_reused;
  r.seconds = seconds_since(t0);
  return r;
}

}  // namespace mf::eval
