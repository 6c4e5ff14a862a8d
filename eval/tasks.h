// Evaluation tasks as lm-evaluation-harness defines them (its arc_easy, piqa, mmlu, gsm8k
// configs): readers for the files in ../shared/data/eval and the prompt text of each document.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace mf::eval {

// A multiple-choice document after lm-eval's doc_to_text / doc_to_choice / doc_to_target.
struct McDoc {
  std::string id;                    // "arc_easy/17", "mmlu/anatomy/3"
  std::string text;                  // "Question: ...\nAnswer:"
  std::vector<std::string> choices;  // continuations, without the target delimiter
  int gold = 0;
  std::string subject;               // MMLU's subject ("" for other tasks)
};

struct McTask {
  std::string name;
  std::vector<McDoc> docs;
  // Few-shot examples per subject, taken in order (MMLU: the dev split, lm-eval's first_n
  // sampler). A task without a pool draws its shots from its own documents, the first ones
  // other than the document itself.
  std::map<std::string, std::vector<McDoc>> fewshot_pool;
  int default_shots = 0;
  // Text before the examples; "{subject}" becomes the subject with spaces (MMLU).
  std::string description;
  std::string target_delimiter = " ", fewshot_delimiter = "\n\n";
};

// A GSM8K problem.
struct GenDoc {
  std::string id;
  std::string text;    // "Question: ...\nAnswer:"
  std::string target;  // the worked solution ending "#### 18" (the few-shot examples' answers)
  std::string answer;  // the final number, "18"
};

struct GenTask {
  std::string name;
  std::vector<GenDoc> docs, fewshot_pool;
  int default_shots = 5;
  std::string target_delimiter = " ", fewshot_delimiter = "\n\n";
  std::vector<std::string> until;  // stop strings
  int max_tokens = 256;
};

// A multiple-choice JSONL file: one object per line with "query" (the question, e.g.
// "Question: ..."), "choices" (>= 2 strings) and "gold" (an index into choices). The prompt is
// query + "\nAnswer:". Throws mf::Error naming the file and line on bad input or no documents.
McTask read_mc_jsonl(const std::string& name, const std::string& path);

// How an MMLU question is put to the model, as lm-eval's two MMLU task families do:
//  * Letters (its `mmlu`): the choices listed under the question as "A. ..", the continuation
//    is the letter. Small models answer one letter to everything, so they sit at chance.
//  * Continuation (its `mmlu_continuation`): "Question: ..\nAnswer:" and each choice's own
//    text as the continuation, a cloze form that separates models too small for letters.
enum class MmluFormat { Letters, Continuation };

// MMLU: DIR/test/<subject>_test.csv, few-shot pool DIR/dev/<subject>_dev.csv (header
// question,choice0..3,answer; answer an index 0-3 or a letter A-D). subjects empty: all found.
McTask read_mmlu(const std::string& dir, const std::vector<std::string>& subjects = {},
                 MmluFormat format = MmluFormat::Letters);

// GSM8K test problems with the train split as the few-shot pool (JSONL with question, answer).
GenTask read_gsm8k(const std::string& test_path, const std::string& train_path);

// The subject's category as lm-eval groups MMLU: stem, humanities, social_sciences or other.
std::string mmlu_category(const std::string& subject);
// The 57 subjects.
const std::vector<std::string>& mmlu_subjects();

// lm-eval's fewshot_context: description, `shots` labelled examples each followed by the
// few-shot delimiter, then the document's text. Throws mf::Error when the pool is too small.
std::string mc_context(const McTask& task, size_t doc_index, int shots);
// GSM8K: the examples are train documents `shot_indices` (lm_eval_fewshot_draws).
std::string gen_context(const GenTask& task, size_t doc_index, const std::vector<size_t>& shot_indices);
// The few-shot draws lm-eval makes for documents 0..n_docs-1 in turn: one random.Random(seed)
// per task, random.sample(pool, shots) per document (its default sampler, seed 1234).
// Throws mf::Error when the pool has fewer than `shots` documents.
std::vector<std::vector<size_t>> lm_eval_fewshot_draws(size_t pool_size, size_t n_docs, int shots, uint32_t seed = 1234);

// GSM8K answer extraction (lm-eval's gsm8k filters): "strict" takes the number after "#### ",
// "flexible" the last number in the text; "" when none. Commas, "$" and a trailing "." are
// removed before comparing, as its exact-match normalisation does.
std::string gsm8k_strict_answer(const std::string& text);
std::string gsm8k_flexible_answer(const std::string& text);
std::string normalize_number(std::string s);

}  // namespace mf::eval
