// Jinja parser: statements (if/for/set/macro/...) from the lexer's segments, and expressions
// by recursive descent with Jinja's precedence (ternary < or < and < not < comparisons <
// + - < ~ < * / // % < ** < unary < postfix/filters/tests).
#include <algorithm>

#include "tokenizer/jinja_internal.h"

namespace mf::jinja {

namespace {

constexpr int kMaxNesting = 100;  // nested expressions, and nested blocks

ExprPtr make(ExprKind k, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = k;
  e->line = line;
  return e;
}

class ExprParser {
 public:
  explicit ExprParser(const std::vector<Tok>& toks) : t_(toks) {}

  const Tok& peek(size_t ahead = 0) const { return t_[std::min(i_ + ahead, t_.size() - 1)]; }
  const Tok& next() { return t_[std::min(i_++, t_.size() - 1)]; }
  bool at_end() const { return peek().kind == TokKind::End; }
  bool is_op(const char* op, size_t ahead = 0) const { return peek(ahead).kind == TokKind::Op && peek(ahead).text == op; }
  bool is_name(const char* n, size_t ahead = 0) const { return peek(ahead).kind == TokKind::Name && peek(ahead).text == n; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    ++i_;
    return true;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    ++i_;
    return true;
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) error_at(peek().line, std::string("expected '") + op + "', found " + describe(peek()));
  }
  std::string expect_name() {
    if (peek().kind != TokKind::Name) error_at(peek().line, "expected a name, found " + describe(peek()));
    return next().text;
  }
  void expect_end() {
    if (!at_end()) error_at(peek().line, "unexpected " + describe(peek()));
  }
  static std::string describe(const Tok& t) {
    switch (t.kind) {
      case TokKind::End: return "end of tag";
      case TokKind::String: return "string '" + t.text + "'";
      case TokKind::Int: return "integer " + std::to_string(t.i);
      case TokKind::Float: return "number";
      default: return "'" + t.text + "'";
    }
  }

  // expression := or_expr ['if' or_expr ['else' expression]]
  ExprPtr expression(bool with_ternary = true) {
    DepthGuard guard(*this);
    ExprPtr e = or_expr();
    if (with_ternary && is_name("if")) {
      int line = next().line;
      auto t = make(ExprKind::Ternary, line);
      ExprPtr cond = or_expr();
      ExprPtr other = accept_name("else") ? expression() : nullptr;
      t->args.push_back(std::move(e));
      t->args.push_back(std::move(cond));
      t->args.push_back(std::move(other));
      return t;
    }
    return e;
  }

  // A comma-separated list becomes a tuple (for `a, b` style values).
  ExprPtr tuple_or_expression() {
    ExprPtr e = expression();
    if (!is_op(",")) return e;
    auto t = make(ExprKind::Tuple, e->line);
    t->args.push_back(std::move(e));
    while (accept_op(",")) {
      if (at_end()) break;
      t->args.push_back(expression());
    }
    return t;
  }

  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (is_name("or")) {
      auto b = make(ExprKind::Binary, next().line);
      b->name = "or";
      b->args.push_back(std::move(e));
      b->args.push_back(and_expr());
      e = std::move(b);
    }
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (is_name("and")) {
      auto b = make(ExprKind::Binary, next().line);
      b->name = "and";
      b->args.push_back(std::move(e));
      b->args.push_back(not_expr());
      e = std::move(b);
    }
    return e;
  }
  ExprPtr not_expr() {
    DepthGuard guard(*this);
    if (is_name("not")) {
      auto u = make(ExprKind::Unary, next().line);
      u->name = "not";
      u->args.push_back(not_expr());
      return u;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = add();
    for (;;) {
      std::string op;
      if (peek().kind == TokKind::Op && (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == "<=" ||
                                         peek().text == ">" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        return e;
      }
      auto b = make(ExprKind::Binary, e->line);
      b->name = op;
      b->args.push_back(std::move(e));
      b->args.push_back(add());
      e = std::move(b);
    }
  }
  ExprPtr binary_level(ExprPtr (ExprParser::*sub)(), std::initializer_list<const char*> ops) {
    ExprPtr e = (this->*sub)();
    for (;;) {
      const char* found = nullptr;
      for (const char* op : ops)
        if (is_op(op)) found = op;
      if (!found) return e;
      auto b = make(ExprKind::Binary, next().line);
      b->name = found;
      b->args.push_back(std::move(e));
      b->args.push_back((this->*sub)());
      e = std::move(b);
    }
  }
  ExprPtr add() { return binary_level(&ExprParser::concat, {"+", "-"}); }
  ExprPtr concat() { return binary_level(&ExprParser::mul, {"~"}); }
  ExprPtr mul() { return binary_level(&ExprParser::pow, {"*", "/", "//", "%"}); }
  ExprPtr pow() { return binary_level(&ExprParser::unary, {"**"}); }
  ExprPtr unary() {
    DepthGuard guard(*this);
    if (is_op("-") || is_op("+")) {
      auto u = make(ExprKind::Unary, peek().line);
      u->name = next().text;
      u->args.push_back(unary());
      return u;
    }
    return postfix(primary());
  }

  ExprPtr primary() {
    const Tok& t = next();
    if (t.kind == TokKind::String) {
      auto e = make(ExprKind::Literal, t.line);
      std::string s = t.text;
      while (peek().kind == TokKind::String) s += next().text;  // adjacent literals concatenate
      e->value = s;
      return e;
    }
    if (t.kind == TokKind::Int || t.kind == TokKind::Float) {
      auto e = make(ExprKind::Literal, t.line);
      if (t.kind == TokKind::Int) e->value = t.i;
      else e->value = t.f;
      return e;
    }
    if (t.kind == TokKind::Name) {
      auto e = make(ExprKind::Literal, t.line);
      if (t.text == "true" || t.text == "True") e->value = true;
      else if (t.text == "false" || t.text == "False") e->value = false;
      else if (t.text == "none" || t.text == "None") e->value = nullptr;
      else {
        e->kind = ExprKind::Name;
        e->name = t.text;
      }
      return e;
    }
    if (t.kind == TokKind::Op && t.text == "(") {
      if (accept_op(")")) return make(ExprKind::Tuple, t.line);
      ExprPtr e = expression();
      if (is_op(",")) {
        auto tup = make(ExprKind::Tuple, t.line);
        tup->args.push_back(std::move(e));
        while (accept_op(",")) {
          if (is_op(")")) break;
          tup->args.push_back(expression());
        }
        e = std::move(tup);
      }
      expect_op(")");
      return e;
    }
    if (t.kind == TokKind::Op && t.text == "[") {
      auto e = make(ExprKind::List, t.line);
      while (!accept_op("]")) {
        e->args.push_back(expression());
        if (!accept_op(",")) {
          expect_op("]");
          break;
        }
      }
      return e;
    }
    if (t.kind == TokKind::Op && t.text == "{") {
      auto e = make(ExprKind::Dict, t.line);
      while (!accept_op("}")) {
        e->args.push_back(expression());
        expect_op(":");
        e->args.push_back(expression());
        if (!accept_op(",")) {
          expect_op("}");
          break;
        }
      }
      return e;
    }
    error_at(t.line, "unexpected " + describe(t) + " in expression");
  }

  void call_args(Expr& call) {
    // After '(': positional and keyword arguments up to ')'.
    while (!accept_op(")")) {
      if (peek().kind == TokKind::Name && is_op("=", 1)) {
        std::string key = next().text;
        next();
        call.kwargs.emplace_back(key, expression());
      } else {
        if (!call.kwargs.empty()) error_at(peek().line, "positional argument after keyword argument");
        call.args.push_back(expression());
      }
      if (!accept_op(",")) {
        expect_op(")");
        break;
      }
    }
  }

  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      if (is_op(".")) {
        int line = next().line;
        auto a = make(ExprKind::Attr, line);
        if (peek().kind == TokKind::Int) a->name = std::to_string(next().i);  // x.0
        else a->name = expect_name();
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        int line = next().line;
        ExprPtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) parts[k] = expression();
          if (k < 2 && accept_op(":")) {
            slice = true;
            continue;
          }
          break;
        }
        expect_op("]");
        auto s = make(slice ? ExprKind::Slice : ExprKind::Index, line);
        s->args.push_back(std::move(e));
        if (slice) {
          for (auto& p : parts) s->args.push_back(std::move(p));
        } else {
          if (!parts[0]) error_at(line, "empty subscript '[]'");
          s->args.push_back(std::move(parts[0]));
        }
        e = std::move(s);
      } else if (is_op("(")) {
        int line = next().line;
        auto c = make(ExprKind::Call, line);
        c->args.push_back(std::move(e));
        call_args(*c);
        e = std::move(c);
      } else if (is_op("|")) {
        int line = next().line;
        auto f = make(ExprKind::Filter, line);
        f->name = expect_name();
        if (!is_known_filter(f->name)) error_at(line, "unsupported filter '" + f->name + "'");
        f->args.push_back(std::move(e));
        if (accept_op("(")) call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        int line = next().line;
        auto t = make(ExprKind::Test, line);
        t->negated = accept_name("not");
        t->name = expect_name();
        if (t->name == "none") t->name = "none";
        if (!is_known_test(t->name)) error_at(line, "unsupported test 'is " + t->name + "'");
        t->args.push_back(std::move(e));
        if (accept_op("(")) {
          call_args(*t);
        } else if (peek().kind == TokKind::String || peek().kind == TokKind::Int || peek().kind == TokKind::Float ||
                   (peek().kind == TokKind::Name && !is_name("and") && !is_name("or") && !is_name("else") &&
                    !is_name("if") && !is_name("in") && !is_name("not") && !is_name("is"))) {
          t->args.push_back(primary());  // `is divisibleby 3`, `is equalto 'x'`
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

 private:
  // Bounds the recursion of deeply nested expressions (a malformed template must not overflow the stack).
  struct DepthGuard {
    explicit DepthGuard(ExprParser& p) : p_(p) {
      if (++p_.depth_ > kMaxNesting) error_at(p_.peek().line, "expression nested too deeply");
    }
    ~DepthGuard() { --p_.depth_; }
    ExprParser& p_;
  };
  const std::vector<Tok>& t_;
  size_t i_ = 0;
  int depth_ = 0;
};

// Statement parser over the segments.
class Parser {
 public:
  explicit Parser(const std::vector<Segment>& segs) : s_(segs) {}

  std::unique_ptr<Node> parse_all() {
    auto body = parse_body({});
    if (pos_ < s_.size()) {
      const Segment& seg = s_[pos_];
      error_at(seg.line, "unexpected '{% " + seg.toks[0].text + " %}'");
    }
    return body;
  }

 private:
  static std::string tag_of(const Segment& seg) { return seg.toks[0].kind == TokKind::Name ? seg.toks[0].text : ""; }

  // Parses nodes until a statement whose tag is in `stops` (left unconsumed) or the end.
  std::unique_ptr<Node> parse_body(const std::vector<std::string>& stops) {
    auto body = std::make_unique<Node>();
    body->kind = NodeKind::Body;
    while (pos_ < s_.size()) {
      const Segment& seg = s_[pos_];
      if (seg.kind == SegKind::Text) {
        auto n = std::make_unique<Node>();
        n->kind = NodeKind::Text;
        n->text = seg.text;
        n->line = seg.line;
        body->children.push_back(std::move(n));
        ++pos_;
        continue;
      }
      if (seg.kind == SegKind::Expr) {
        ExprParser p(seg.toks);
        auto n = std::make_unique<Node>();
        n->kind = NodeKind::Output;
        n->line = seg.line;
        n->exprs.push_back(p.tuple_or_expression());
        p.expect_end();
        body->children.push_back(std::move(n));
        ++pos_;
        continue;
      }
      const std::string tag = tag_of(seg);
      if (std::find(stops.begin(), stops.end(), tag) != stops.end()) return body;
      body->children.push_back(statement(seg));
    }
    if (!stops.empty()) error_at(s_.empty() ? 1 : s_.back().line, "unclosed block: expected '{% " + stops.back() + " %}' before the end of the template");
    return body;
  }

  // Consumes the closing tag `name` (already checked to be next) with no arguments.
  void end_tag(const char* name) {
    const Segment& seg = s_[pos_++];
    ExprParser p(seg.toks);
    p.next();
    p.expect_end();
    (void)name;
  }

  std::unique_ptr<Node> statement(const Segment& seg) {
    if (++depth_ > kMaxNesting) error_at(seg.line, "blocks nested too deeply");
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth_};
    ExprParser p(seg.toks);
    const std::string tag = p.next().text;
    auto n = std::make_unique<Node>();
    n->line = seg.line;
    ++pos_;
    if (tag == "if") {
      n->kind = NodeKind::If;
      n->exprs.push_back(p.tuple_or_expression());
      p.expect_end();
      for (;;) {
        n->children.push_back(parse_body({"elif", "else", "endif"}));
        const Segment& stop = s_[pos_];
        const std::string t = tag_of(stop);
        if (t == "elif") {
          ExprParser q(stop.toks);
          q.next();
          n->exprs.push_back(q.tuple_or_expression());
          q.expect_end();
          ++pos_;
        } else if (t == "else") {
          end_tag("else");
          n->children.push_back(parse_body({"endif"}));
          n->has_else = true;
          end_tag("endif");
          break;
        } else {
          end_tag("endif");
          break;
        }
      }
    } else if (tag == "for") {
      n->kind = NodeKind::For;
      n->targets.push_back(p.expect_name());
      while (p.accept_op(",")) n->targets.push_back(p.expect_name());
      if (!p.accept_name("in")) error_at(seg.line, "expected 'in' in for loop");
      n->exprs.push_back(p.expression(/*with_ternary=*/false));
      if (p.accept_name("if")) n->exprs.push_back(p.expression(false));
      if (p.is_name("recursive")) error_at(seg.line, "unsupported: recursive for loops");
      p.expect_end();
      n->children.push_back(parse_body({"else", "endfor"}));
      if (tag_of(s_[pos_]) == "else") {
        end_tag("else");
        n->children.push_back(parse_body({"endfor"}));
        n->has_else = true;
      }
      end_tag("endfor");
    } else if (tag == "set") {
      std::string first = p.expect_name();
      if (p.accept_op(".")) {
        n->kind = NodeKind::Set;
        n->targets.push_back(first);
        n->attr = p.expect_name();
      } else {
        n->targets.push_back(first);
        while (p.accept_op(",")) n->targets.push_back(p.expect_name());
        if (p.at_end() && n->targets.size() == 1) {  // {% set x %}...{% endset %}
          n->kind = NodeKind::SetBlock;
          n->children.push_back(parse_body({"endset"}));
          end_tag("endset");
          return n;
        }
        n->kind = NodeKind::Set;
      }
      p.expect_op("=");
      n->exprs.push_back(p.tuple_or_expression());
      p.expect_end();
    } else if (tag == "macro") {
      n->kind = NodeKind::Macro;
      n->targets.push_back(p.expect_name());
      p.expect_op("(");
      while (!p.accept_op(")")) {
        n->targets.push_back(p.expect_name());
        if (p.accept_op("=")) n->defaults.push_back(p.expression());
        else if (!n->defaults.empty()) error_at(seg.line, "macro parameter without a default after one with a default");
        if (!p.accept_op(",")) {
          p.expect_op(")");
          break;
        }
      }
      p.expect_end();
      n->children.push_back(parse_body({"endmacro"}));
      end_tag("endmacro");
    } else if (tag == "break" || tag == "continue") {
      n->kind = tag == "break" ? NodeKind::Break : NodeKind::Continue;
      p.expect_end();
    } else if (tag == "generation") {  // transformers' assistant-mask marker: renders its body
      p.expect_end();
      n = parse_body({"endgeneration"});
      end_tag("endgeneration");
    } else if (tag == "elif" || tag == "else" || tag == "endif" || tag == "endfor" || tag == "endset" || tag == "endmacro" ||
               tag == "endgeneration") {
      error_at(seg.line, "unexpected '{% " + tag + " %}' without its opening tag");
    } else {
      error_at(seg.line, "unsupported tag '{% " + (tag.empty() ? p.describe(seg.toks[0]) : tag) + " %}'");
    }
    return n;
  }

  const std::vector<Segment>& s_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::unique_ptr<Node> parse(const std::vector<Segment>& segments) { return Parser(segments).parse_all(); }

}  // namespace mf::jinja
