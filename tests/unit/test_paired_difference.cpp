// eval/paired_difference.h: two runs' accuracy difference over the same documents.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "eval/paired_difference.h"

namespace mf::eval {
namespace {

std::string rec(const std::string& task, int id, double acc) {
  return R"({"task":")" + task + R"(","id":")" + task + "/" + std::to_string(id) + R"(","acc":)" + std::to_string(acc) + "}\n";
}

TEST(PairedDifference, PerTaskMeansAndStandardErrorsOfTheDocumentDifferences) {
  // Task x: a right on 0,1,2, b on 0,3: differences {0, 1, 1, -1}. Task y: a = b on both.
  std::string a = rec("x", 0, 1) + rec("x", 1, 1) + rec("x", 2, 1) + rec("x", 3, 0) + rec("y", 0, 1) + rec("y", 1, 0);
  std::string b = rec("y", 1, 0) + rec("x", 3, 1) + rec("x", 0, 1) + rec("x", 2, 0) + rec("x", 1, 0) + rec("y", 0, 1);
  a += R"({"task":"gsm8k","id":"gsm8k/0","exact_match":1})" "\n";  // no acc: skipped
  const PairedDifference d = paired_difference(a, b);
  ASSERT_EQ(d.tasks.size(), 2u);
  const PairedTask& x = d.tasks[0];
  EXPECT_EQ(x.task, "x");
  EXPECT_EQ(x.n, 4);
  EXPECT_DOUBLE_EQ(x.diff, 0.25);
  // Sample variance of {0, 1, 1, -1} around 0.25: (0.0625 + 0.5625 * 2 + 1.5625) / 3 = 0.91667.
  EXPECT_NEAR(x.se, std::sqrt(0.9166666666666666 / 4), 1e-12);
  EXPECT_EQ(x.a_only, 2);
  EXPECT_EQ(x.b_only, 1);
  EXPECT_EQ(d.tasks[1].diff, 0.0);
  EXPECT_EQ(d.tasks[1].se, 0.0);
  EXPECT_DOUBLE_EQ(d.mean_diff, 0.125);
  EXPECT_NEAR(d.mean_se, x.se / 2, 1e-12);
  // Swapping the runs flips the differences, not the errors.
  const PairedDifference r = paired_difference(b, a);
  EXPECT_DOUBLE_EQ(r.mean_diff, -0.125);
  EXPECT_DOUBLE_EQ(r.mean_se, d.mean_se);
}

TEST(PairedDifference, RefusesRunsOverOtherDocumentsAndMalformedRecords) {
  const std::string a = rec("x", 0, 1) + rec("x", 1, 0);
  auto message = [](const std::string& ra, const std::string& rb) -> std::string {
    try {
      paired_difference(ra, rb, "A.jsonl", "B.jsonl");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message(a, rec("x", 0, 1) + rec("x", 2, 0)).find("B.jsonl has no document x/1 of task x"), std::string::npos);
  EXPECT_NE(message(a, rec("x", 0, 1)).find("A.jsonl scores 2 multiple-choice documents, B.jsonl 1"), std::string::npos);
  EXPECT_NE(message(a + "{not json\n", a).find("A.jsonl: line 3 is not a JSON object"), std::string::npos);
  EXPECT_NE(message(a, a + rec("x", 0, 1)).find("B.jsonl: document x/0 of task x appears twice"), std::string::npos);
  EXPECT_NE(message(R"({"task":"x","acc":1})" "\n", a).find("line 1 lacks a string task and id"), std::string::npos);
  EXPECT_NE(message("", "").find("A.jsonl: no multiple-choice documents"), std::string::npos);
}

}  // namespace
}  // namespace mf::eval
