// Jinja interpreter internals shared by the lexer, parser and evaluator (see jinja.h).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja.h"

namespace mf::jinja {

// ---- lexer (jinja_lexer.cpp) ----

enum class TokKind { Name, Int, Float, String, Op, End };

struct Tok {
  TokKind kind = TokKind::End;
  std::string text;  // name, operator, or the unescaped string
  int64_t i = 0;
  double f = 0;
  int line = 1;
};

enum class SegKind { Text, Expr, Stmt };

// The template split at its tags, whitespace control already applied; comments dropped.
struct Segment {
  SegKind kind = SegKind::Text;
  std::string text;       // Text
  std::vector<Tok> toks;  // Expr/Stmt contents, ending with an End token
  int line = 1;
};

std::vector<Segment> lex(const std::string& source);

// ---- syntax tree (jinja_parser.cpp) ----

enum class ExprKind { Literal, Name, Attr, Index, Slice, Call, Filter, Test, Unary, Binary, Ternary, List, Dict, Tuple };

struct Expr {
  ExprKind kind;
  int line = 1;
  std::string name;  // Name, Attr, Filter, Test, Unary/Binary operator
  Value value;       // Literal
  bool negated = false;  // Test: "is not"
  std::vector<std::unique_ptr<Expr>> args;  // operands / call arguments / list items / dict k,v pairs
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
};
using ExprPtr = std::unique_ptr<Expr>;

enum class NodeKind { Body, Text, Output, If, For, Set, SetBlock, Macro, Break, Continue };

struct Node {
  NodeKind kind = NodeKind::Body;
  int line = 1;
  std::string text;                    // Text
  std::vector<std::unique_ptr<Node>> children;  // Body; If: one Body per branch (+ else)
  std::vector<ExprPtr> exprs;          // Output: [e]; If: conditions; For: [iter, cond?]; Set: [value]
  std::vector<std::string> targets;    // For/Set/SetBlock target names; Macro: [name, params...]
  std::string attr;                    // Set: ns.attr target (targets[0] is ns)
  std::vector<ExprPtr> defaults;       // Macro: defaults of the last params
  bool has_else = false;               // If/For: last child is the else body
};

std::unique_ptr<Node> parse(const std::vector<Segment>& segments);

[[noreturn]] void error_at(int line, const std::string& what);

bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

}  // namespace mf::jinja
