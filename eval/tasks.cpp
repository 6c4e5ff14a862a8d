#include "eval/tasks.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text_file.h"
#include "eval/python_random.h"

namespace mf::eval {

namespace fs = std::filesystem;

namespace {

std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

// Lines of a JSONL file, each parsed; errors name file:line.
template <typename F>
void for_each_json_line(const std::string& path, F&& f) {
  const std::string text = read_text_file(path);
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (strip(line).empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(path, ":", line_no, ": not JSON (", e.what(), ")");
    }
    if (!j.is_object()) fail(path, ":", line_no, ": expected a JSON object");
    try {
      f(j, line_no);
    } catch (const nlohmann::json::exception& e) {
      fail(path, ":", line_no, ": ", e.what());
    }
  }
}

std::string string_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) fail(where, ": missing field \"", key, "\"");
  if (!j[key].is_string()) fail(where, ": field \"", key, "\" is not a string");
  return j[key].get<std::string>();
}

// RFC 4180 records: fields separated by commas, quoted fields may hold commas, newlines and
// doubled quotes.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  int line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
        else quoted = false;
      } else {
        if (c == '\n') ++line;
        field += c;
      }
    } else if (c == '"' && field.empty() && !field_started) {
      quoted = field_started = true;
    } else if (c == ',') {
      row.push_back(std::move(field)), field.clear(), field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(std::move(field)), field.clear(), field_started = false;
      rows.push_back(std::move(row)), row.clear();
      ++line;
    } else {
      field += c, field_started = true;
    }
  }
  if (quoted) fail(path, ": a quoted field is not closed (line ", line, ")");
  if (field_started || !row.empty()) row.push_back(std::move(field)), rows.push_back(std::move(row));
  return rows;
}

std::vector<McDoc> read_mmlu_csv(const std::string& path, const std::string& subject, const std::string& split,
                                 MmluFormat format) {
  const auto rows = parse_csv(read_text_file(path), path);
  std::vector<McDoc> docs;
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& f = rows[r];
    if (r == 0 && !f.empty() && f[0] == "question") continue;  // header
    if (f.size() == 1 && f[0].empty()) continue;
    if (f.size() != 6) fail(path, ": row ", r + 1, " has ", f.size(), " fields, expected 6 (question,choice0..3,answer)");
    int gold = -1;
    const std::string a = strip(f[5]);
    if (a.size() == 1 && a[0] >= '0' && a[0] <= '3') gold = a[0] - '0';
    if (a.size() == 1 && a[0] >= 'A' && a[0] <= 'D') gold = a[0] - 'A';
    if (gold < 0) fail(path, ": row ", r + 1, ": answer '", a, "' is not 0-3 or A-D");
    McDoc d;
    const bool letters = format == MmluFormat::Letters;
    d.id = std::string(letters ? "mmlu/" : "mmlu_continuation/") + subject +
           (split == "test" ? "/" : "/" + split + "/") + std::to_string(docs.size());
    if (letters) {
      // lm-eval's mmlu template: "{{question.strip()}}\nA. {{choices[0]}}\nB. ...\nAnswer:".
      d.text = strip(f[0]) + "\nA. " + f[1] + "\nB. " + f[2] + "\nC. " + f[3] + "\nD. " + f[4] + "\nAnswer:";
      d.choices = {"A", "B", "C", "D"};
    } else {
      // lm-eval's mmlu_continuation template: "Question: {{question.strip()}}\nAnswer:", and
      // doc_to_choice "{{choices}}": the choices' own text, as given.
      d.text = "Question: " + strip(f[0]) + "\nAnswer:";
      d.choices = {f[1], f[2], f[3], f[4]};
    }
    d.gold = gold;
    d.subject = subject;
    docs.push_back(std::move(d));
  }
  return docs;
}

}  // namespace

McTask read_mc_jsonl(const std::string& name, const std::string& path) {
  McTask t;
  t.name = name;
  for_each_json_line(path, [&](const nlohmann::json& j, int line) {
    const std::string where = path + ":" + std::to_string(line);
    McDoc d;
    d.id = name + "/" + std::to_string(t.docs.size());
    d.text = string_field(j, "query", where) + "\nAnswer:";
    if (!j.contains("choices")) fail(where, ": missing field \"choices\"");
    if (!j["choices"].is_array() || j["choices"].size() < 2) fail(where, ": \"choices\" must be an array of at least 2 strings");
    for (const auto& c : j["choices"]) {
      if (!c.is_string()) fail(where, ": a choice is not a string");
      d.choices.push_back(c.get<std::string>());
    }
    if (!j.contains("gold")) fail(where, ": missing field \"gold\"");
    if (!j["gold"].is_number_integer()) fail(where, ": \"gold\" is not an integer");
    const int64_t g = j["gold"].get<int64_t>();
    if (g < 0 || g >= int64_t(d.choices.size()))
      fail(where, ": gold index ", g, " is out of range (", d.choices.size(), " choices)");
    d.gold = int(g);
    t.docs.push_back(std::move(d));
  });
  if (t.docs.empty()) fail(path, ": no documents (an empty task)");
  return t;
}

const std::vector<std::string>& mmlu_subjects() {
  static const std::vector<std::string> s = {
      "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
      "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine", "college_physics",
      "computer_security", "conceptual_physics", "econometrics", "electrical_engineering", "elementary_mathematics",
      "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
      "high_school_european_history", "high_school_geography", "high_school_government_and_politics",
      "high_school_macroeconomics", "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
      "high_school_psychology", "high_school_statistics", "high_school_us_history", "high_school_world_history",
      "human_aging", "human_sexuality", "international_law", "jurisprudence", "logical_fallacies", "machine_learning",
      "management", "marketing", "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
      "philosophy", "prehistory", "professional_accounting", "professional_law", "professional_medicine",
      "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy", "virology",
      "world_religions"};
  return s;
}

std::string mmlu_category(const std::string& subject) {
  // lm-eval's mmlu group tags (the MMLU paper's categories).
  static const std::map<std::string, std::string> m = [] {
    std::map<std::string, std::string> c;
    for (const char* s : {"abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
                          "college_computer_science", "college_mathematics", "college_physics", "computer_security",
                          "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
                          "high_school_chemistry", "high_school_computer_science", "high_school_mathematics",
                          "high_school_physics", "high_school_statistics", "machine_learning"})
      c[s] = "stem";
    for (const char* s : {"formal_logic", "high_school_european_history", "high_school_us_history",
                          "high_school_world_history", "international_law", "jurisprudence", "logical_fallacies",
                          "moral_disputes", "moral_scenarios", "philosophy", "prehistory", "professional_law",
                          "world_religions"})
      c[s] = "humanities";
    for (const char* s : {"econometrics", "high_school_geography", "high_school_government_and_politics",
                          "high_school_macroeconomics", "high_school_microeconomics", "high_school_psychology",
                          "human_sexuality", "professional_psychology", "public_relations", "security_studies",
                          "sociology", "us_foreign_policy"})
      c[s] = "social_sciences";
    for (const char* s : {"business_ethics", "clinical_knowledge", "college_medicine", "global_facts", "human_aging",
                          "management", "marketing", "medical_genetics", "miscellaneous", "nutrition",
                          "professional_accounting", "professional_medicine", "virology"})
      c[s] = "other";
    return c;
  }();
  auto it = m.find(subject);
  return it == m.end() ? "other" : it->second;
}

McTask read_mmlu(const std::string& dir, const std::vector<std::string>& subjects, MmluFormat format) {
  McTask t;
  t.name = format == MmluFormat::Letters ? "mmlu" : "mmlu_continuation";
  t.default_shots = 0;
  t.description = format == MmluFormat::Letters
                      ? "The following are multiple choice questions (with answers) about {subject}.\n\n"
                      : "The following are questions (with answers) about {subject}.\n\n";
  std::vector<std::string> list = subjects;
  if (list.empty()) {
    if (!fs::is_directory(fs::path(dir) / "test")) fail(dir, ": no test/ directory of MMLU CSV files");
    for (const auto& e : fs::directory_iterator(fs::path(dir) / "test")) {
      const std::string f = e.path().filename().string();
      if (f.size() > 9 && f.ends_with("_test.csv")) list.push_back(f.substr(0, f.size() - 9));
    }
    std::sort(list.begin(), list.end());
    if (list.empty()) fail(dir, "/test: no <subject>_test.csv files");
  }
  for (const std::string& s : list) {
    const fs::path test = fs::path(dir) / "test" / (s + "_test.csv");
    if (!fs::exists(test)) fail("MMLU subject '", s, "': ", test.string(), " does not exist");
    std::vector<McDoc> docs = read_mmlu_csv(test.string(), s, "test", format);
    t.docs.insert(t.docs.end(), docs.begin(), docs.end());
    const fs::path dev = fs::path(dir) / "dev" / (s + "_dev.csv");
    if (fs::exists(dev)) t.fewshot_pool[s] = read_mmlu_csv(dev.string(), s, "dev", format);
  }
  if (t.docs.empty()) fail(dir, ": no MMLU test questions");
  return t;
}

GenTask read_gsm8k(const std::string& test_path, const std::string& train_path) {
  GenTask t;
  t.name = "gsm8k";
  t.until = {"Question:", "</s>", "<|im_end|>"};  // lm-eval gsm8k.yaml generation_kwargs
  const auto read = [](const std::string& path, std::vector<GenDoc>& out) {
    for_each_json_line(path, [&](const nlohmann::json& j, int line) {
      const std::string where = path + ":" + std::to_string(line);
      GenDoc d;
      d.id = "gsm8k/" + std::to_string(out.size());
      d.text = "Question: " + string_field(j, "question", where) + "\nAnswer:";
      d.target = string_field(j, "answer", where);
      d.answer = gsm8k_strict_answer(d.target);
      if (d.answer.empty()) fail(where, ": the answer has no final \"#### N\"");
      out.push_back(std::move(d));
    });
    if (out.empty()) fail(path, ": no problems (an empty task)");
  };
  read(test_path, t.docs);
  read(train_path, t.fewshot_pool);
  return t;
}

std::string mc_context(const McTask& task, size_t doc_index, int shots) {
  const McDoc& doc = task.docs.at(doc_index);
  std::string out = task.description;
  if (size_t p = out.find("{subject}"); p != std::string::npos) {
    std::string subject = doc.subject;
    std::replace(subject.begin(), subject.end(), '_', ' ');
    out.replace(p, 9, subject);
  }
  if (shots > 0) {
    auto pool = task.fewshot_pool.find(doc.subject);
    std::vector<const McDoc*> examples;
    if (pool != task.fewshot_pool.end()) {
      for (const McDoc& d : pool->second)
        if (int(examples.size()) < shots) examples.push_back(&d);
    } else {
      for (size_t i = 0; i < task.docs.size() && int(examples.size()) < shots; ++i)
        if (i != doc_index) examples.push_back(&task.docs[i]);
    }
    if (int(examples.size()) < shots)
      fail(task.name, ": ", shots, " shots asked, but the few-shot pool", doc.subject.empty() ? "" : " of " + doc.subject,
           " has only ", examples.size());
    for (const McDoc* e : examples)
      out += e->text + task.target_delimiter + e->choices[size_t(e->gold)] + task.fewshot_delimiter;
  }
  return out + doc.text;
}

std::string gen_context(const GenTask& task, size_t doc_index, const std::vector<size_t>& shot_indices) {
  std::string out;
  for (size_t i : shot_indices)
    out += task.fewshot_pool.at(i).text + task.target_delimiter + task.fewshot_pool.at(i).target + task.fewshot_delimiter;
  return out + task.docs.at(doc_index).text;
}

std::vector<std::vector<size_t>> lm_eval_fewshot_draws(size_t pool_size, size_t n_docs, int shots, uint32_t seed) {
  if (shots < 0 || size_t(shots) > pool_size)
    fail(shots, " shots asked, but the few-shot pool has only ", pool_size);
  PythonRandom rnd(seed);
  std::vector<std::vector<size_t>> draws(n_docs);
  for (auto& d : draws) d = rnd.sample(pool_size, size_t(shots));
  return draws;
}

std::string normalize_number(std::string s) {
  // lm-eval gsm8k exact_match: regexes_to_ignore ",", "\$", "(?s).*#### ", "\.$".
  if (size_t p = s.rfind("#### "); p != std::string::npos) s = s.substr(p + 5);
  std::string out;
  for (char c : s)
    if (c != ',' && c != '$') out += c;
  if (!out.empty() && out.back() == '.') out.pop_back();
  return strip(out);
}

std::string gsm8k_strict_answer(const std::string& text) {
  static const std::regex re(R"(#### (\-?[0-9\.\,]+))");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return "";
  return normalize_number(m[1].str());
}

std::string gsm8k_flexible_answer(const std::string& text) {
  static const std::regex re(R"((-?[$0-9.,]{2,})|(-?[0-9]+))");
  std::string last;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it)
    last = (*it)[1].matched ? (*it)[1].str() : (*it)[2].str();
  return last.empty() ? "" : normalize_number(last);
}

}  // namespace mf::eval
