// Jinja evaluator: walks the syntax tree with a stack of scopes (a for loop or macro call
// opens one; `set` writes the innermost, as Jinja's scoping rules do, so templates carry
// state out of loops with namespace()).
#include <chrono>
#include <cmath>
#include <ctime>
#include <map>

#include "tokenizer/jinja_internal.h"
#include "tokenizer/jinja_value.h"

namespace mf::jinja {

namespace {

constexpr int kMaxDepth = 200;          // nested macro calls
constexpr size_t kMaxOutput = 64 << 20;  // bytes a render may produce
constexpr int64_t kMaxRange = 1 << 24;

enum class Flow { Normal, Break, Continue };

class Renderer {
 public:
  explicit Renderer(const Value& vars) {
    scopes_.emplace_back();
    if (vars.is_object())
      for (auto it = vars.begin(); it != vars.end(); ++it) scopes_.back()[it.key()] = it.value();
  }

  Flow exec(const Node& n, std::string& out) {
    switch (n.kind) {
      case NodeKind::Body:
        for (const auto& c : n.children) {
          Flow f = exec(*c, out);
          if (f != Flow::Normal) return f;
        }
        return Flow::Normal;
      case NodeKind::Text: emit(out, n.text); return Flow::Normal;
      case NodeKind::Output: emit(out, to_python_str(eval(*n.exprs[0]))); return Flow::Normal;
      case NodeKind::If:
        for (size_t i = 0; i < n.exprs.size(); ++i)
          if (truthy(eval(*n.exprs[i]))) return exec(*n.children[i], out);
        if (n.has_else) return exec(*n.children.back(), out);
        return Flow::Normal;
      case NodeKind::For: return exec_for(n, out);
      case NodeKind::Set: exec_set(n); return Flow::Normal;
      case NodeKind::SetBlock: {
        std::string captured;
        exec(*n.children[0], captured);
        scopes_.back()[n.targets[0]] = captured;
        return Flow::Normal;
      }
      case NodeKind::Macro: macros_[n.targets[0]] = &n; return Flow::Normal;
      case NodeKind::Break:
        if (loop_depth_ == 0) error_at(n.line, "'break' outside a for loop");
        return Flow::Break;
      case NodeKind::Continue:
        if (loop_depth_ == 0) error_at(n.line, "'continue' outside a for loop");
        return Flow::Continue;
    }
    return Flow::Normal;
  }

 private:
  void emit(std::string& out, const std::string& s) {
    if (out.size() + s.size() > kMaxOutput) throw Error("chat template output exceeds 64 MiB");
    out += s;
  }

  Value* find_var(const std::string& name) {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return &f->second;
    }
    return nullptr;
  }

  void assign(const std::vector<std::string>& targets, const Value& v, int line) {
    if (targets.size() == 1) {
      scopes_.back()[targets[0]] = v;
      return;
    }
    Value items = v;
    if (!items.is_array() || items.size() != targets.size())
      error_at(line, "cannot unpack " + type_name(v) + " into " + std::to_string(targets.size()) + " names");
    for (size_t i = 0; i < targets.size(); ++i) scopes_.back()[targets[i]] = items[i];
  }

  void exec_set(const Node& n) {
    Value v = eval(*n.exprs[0]);
    if (n.attr.empty()) return assign(n.targets, v, n.line);
    Value* ns = find_var(n.targets[0]);
    if (!ns || !ns->is_object()) error_at(n.line, "cannot set attribute of '" + n.targets[0] + "' (not a namespace)");
    (*ns)[n.attr] = v;
  }

  Flow exec_for(const Node& n, std::string& out) {
    Value iter = eval(*n.exprs[0]);
    Value items = Value::array();
    if (iter.is_array()) items = iter;
    else if (iter.is_object())
      for (auto it = iter.begin(); it != iter.end(); ++it) items.push_back(it.key());
    else if (iter.is_string())
      for (std::string& cp : code_points(iter.get_ref<const std::string&>())) items.push_back(cp);
    else if (!is_undefined(iter) && !iter.is_null())
      error_at(n.line, "'" + type_name(iter) + "' object is not iterable");
    else if (iter.is_null())
      error_at(n.line, "'NoneType' object is not iterable");

    // The inline filter applies before loop.* is computed.
    if (n.exprs.size() > 1) {
      Value kept = Value::array();
      for (const Value& x : items) {
        scopes_.emplace_back();
        assign(n.targets, x, n.line);
        bool ok = truthy(eval(*n.exprs[1]));
        scopes_.pop_back();
        if (ok) kept.push_back(x);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (n.has_else) return exec(*n.children[1], out);
      return Flow::Normal;
    }
    const int64_t len = int64_t(items.size());
    ++loop_depth_;
    for (int64_t i = 0; i < len; ++i) {
      scopes_.emplace_back();
      Value loop = {{"index", i + 1},       {"index0", i},          {"revindex", len - i}, {"revindex0", len - i - 1},
                    {"first", i == 0},      {"last", i == len - 1}, {"length", len},       {"depth", 1},
                    {"depth0", 0}};
      loop["previtem"] = i > 0 ? items[size_t(i - 1)] : undefined();
      loop["nextitem"] = i + 1 < len ? items[size_t(i + 1)] : undefined();
      scopes_.back()["loop"] = std::move(loop);
      assign(n.targets, items[size_t(i)], n.line);
      Flow f;
      try {
        f = exec(*n.children[0], out);
      } catch (...) {
        scopes_.pop_back();
        --loop_depth_;
        throw;
      }
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    --loop_depth_;
    return Flow::Normal;
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case ExprKind::Literal: return e.value;
      case ExprKind::Name: {
        if (Value* v = find_var(e.name)) return *v;
        return undefined();
      }
      case ExprKind::List:
      case ExprKind::Tuple: {
        Value out = Value::array();
        for (const auto& a : e.args) out.push_back(eval(*a));
        return out;
      }
      case ExprKind::Dict: {
        Value out = Value::object();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i]);
          if (!k.is_string()) error_at(e.line, "dict keys must be strings here, got " + type_name(k));
          out[k.get<std::string>()] = eval(*e.args[i + 1]);
        }
        return out;
      }
      case ExprKind::Attr: return get_attr(eval(*e.args[0]), e.name);
      case ExprKind::Index: return get_item(eval(*e.args[0]), eval(*e.args[1]), e.line);
      case ExprKind::Slice: return slice(e);
      case ExprKind::Call: return call(e);
      case ExprKind::Filter: {
        Value v = eval(*e.args[0]);
        std::vector<Value> args;
        for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
        return apply_filter(e.name, v, args, eval_kwargs(e), e.line);
      }
      case ExprKind::Test: {
        Value v = eval(*e.args[0]);
        std::vector<Value> args;
        for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
        return apply_test(e.name, v, args, e.line) != e.negated;
      }
      case ExprKind::Unary: {
        Value v = eval(*e.args[0]);
        if (e.name == "not") return !truthy(v);
        if (!v.is_number()) error_at(e.line, "bad operand type for unary " + e.name + ": '" + type_name(v) + "'");
        if (e.name == "+") return v;
        if (v.is_number_float()) return -v.get<double>();
        return -as_int(v);
      }
      case ExprKind::Ternary: {
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : undefined();
      }
      case ExprKind::Binary: return binary(e);
    }
    error_at(e.line, "unsupported expression");
  }

  Kwargs eval_kwargs(const Expr& e) {
    Kwargs kw;
    for (const auto& [k, v] : e.kwargs) kw.emplace_back(k, eval(*v));
    return kw;
  }

  static Value get_attr(const Value& obj, const std::string& name) {
    if (obj.is_object()) {
      auto it = obj.find(name);
      return it == obj.end() ? undefined() : *it;
    }
    if (obj.is_array() && !name.empty() && name.find_first_not_of("0123456789") == std::string::npos) {
      size_t i = std::stoul(name);
      return i < obj.size() ? obj[i] : undefined();
    }
    return undefined();
  }

  static Value get_item(const Value& obj, const Value& key, int line) {
    if (obj.is_object()) {
      if (!key.is_string()) return undefined();
      auto it = obj.find(key.get<std::string>());
      return it == obj.end() ? undefined() : *it;
    }
    if (obj.is_array() || obj.is_string()) {
      if (!key.is_number_integer() && !key.is_boolean()) {
        if (key.is_string() && obj.is_array()) return undefined();
        error_at(line, "indices must be integers, not " + type_name(key));
      }
      std::vector<std::string> cps;
      if (obj.is_string()) cps = code_points(obj.get_ref<const std::string&>());
      const int64_t n = obj.is_string() ? int64_t(cps.size()) : int64_t(obj.size());
      int64_t i = as_int(key);
      if (i < 0) i += n;
      if (i < 0 || i >= n) return undefined();
      return obj.is_string() ? Value(cps[size_t(i)]) : obj[size_t(i)];
    }
    return undefined();
  }

  Value slice(const Expr& e) {
    Value obj = eval(*e.args[0]);
    auto bound = [&](int k) -> std::optional<int64_t> {
      if (!e.args[size_t(k)]) return std::nullopt;
      Value v = eval(*e.args[size_t(k)]);
      if (v.is_null()) return std::nullopt;
      if (!v.is_number_integer()) error_at(e.line, "slice indices must be integers");
      return v.get<int64_t>();
    };
    std::optional<int64_t> start = bound(1), stop = bound(2), step_o = bound(3);
    int64_t step = step_o.value_or(1);
    if (step == 0) error_at(e.line, "slice step cannot be zero");
    std::vector<std::string> cps;
    if (obj.is_string()) cps = code_points(obj.get_ref<const std::string&>());
    else if (!obj.is_array()) {
      if (is_undefined(obj)) return undefined();
      error_at(e.line, "cannot slice a " + type_name(obj));
    }
    const int64_t n = obj.is_string() ? int64_t(cps.size()) : int64_t(obj.size());
    auto norm = [&](std::optional<int64_t> v, int64_t dflt) {
      if (!v) return dflt;
      int64_t x = *v;
      if (x < 0) x += n;
      if (step > 0) return std::clamp<int64_t>(x, 0, n);
      return std::clamp<int64_t>(x, -1, n - 1);
    };
    int64_t a = norm(start, step > 0 ? 0 : n - 1), b = norm(stop, step > 0 ? n : -1);
    Value out = Value::array();
    std::string s;
    for (int64_t i = a; step > 0 ? i < b : i > b; i += step) {
      if (obj.is_string()) s += cps[size_t(i)];
      else out.push_back(obj[size_t(i)]);
    }
    if (obj.is_string()) return s;
    return out;
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value a = eval(*e.args[0]);
      return truthy(a) ? eval(*e.args[1]) : a;
    }
    if (op == "or") {
      Value a = eval(*e.args[0]);
      return truthy(a) ? a : eval(*e.args[1]);
    }
    Value a = eval(*e.args[0]), b = eval(*e.args[1]);
    if (op == "~") return to_python_str(a) + to_python_str(b);
    if (op == "==") return values_equal(a, b);
    if (op == "!=") return !values_equal(a, b);
    if (op == "in" || op == "not in") {
      if (!b.is_string() && !b.is_array() && !b.is_object())
        error_at(e.line, "argument of type '" + type_name(b) + "' is not iterable");
      if (b.is_string() && !a.is_string()) error_at(e.line, "'in <string>' requires string as left operand, not " + type_name(a));
      return apply_test("in", a, {b}, e.line) == (op == "in");
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      const bool nums = (a.is_number() || a.is_boolean()) && (b.is_number() || b.is_boolean());
      if (!nums && !(a.is_string() && b.is_string()))
        error_at(e.line, "'" + op + "' not supported between '" + type_name(a) + "' and '" + type_name(b) + "'");
      const std::string name = op == "<" ? "lt" : op == ">" ? "gt" : op == "<=" ? "le" : "ge";
      return apply_test(name, a, {b}, e.line);
    }
    const bool nums = (a.is_number() || a.is_boolean()) && (b.is_number() || b.is_boolean());
    const bool ints = nums && !a.is_number_float() && !b.is_number_float();
    if (op == "+") {
      if (a.is_string() && b.is_string()) return a.get<std::string>() + b.get<std::string>();
      if (a.is_array() && b.is_array()) {
        Value out = a;
        for (const Value& x : b) out.push_back(x);
        return out;
      }
      if (ints) return as_int(a) + as_int(b);
      if (nums) return as_double(a) + as_double(b);
    } else if (op == "-") {
      if (ints) return as_int(a) - as_int(b);
      if (nums) return as_double(a) - as_double(b);
    } else if (op == "*") {
      if (ints) return as_int(a) * as_int(b);
      if (nums) return as_double(a) * as_double(b);
      const Value& seq = a.is_number_integer() ? b : a;
      const Value& cnt = a.is_number_integer() ? a : b;
      if (cnt.is_number_integer() && (seq.is_string() || seq.is_array())) {
        int64_t k = cnt.get<int64_t>();
        if (k > 0 && (seq.is_string() ? seq.get_ref<const std::string&>().size() : seq.size()) * size_t(k) > kMaxOutput)
          error_at(e.line, "repetition too large");
        if (seq.is_string()) {
          std::string out;
          for (int64_t i = 0; i < k; ++i) out += seq.get_ref<const std::string&>();
          return out;
        }
        Value out = Value::array();
        for (int64_t i = 0; i < k; ++i)
          for (const Value& x : seq) out.push_back(x);
        return out;
      }
    } else if (op == "/" || op == "//" || op == "%") {
      if (nums) {
        if (as_double(b) == 0) error_at(e.line, "division by zero");
        if (op == "/") return as_double(a) / as_double(b);
        if (ints) {
          int64_t x = as_int(a), y = as_int(b);
          int64_t q = x / y, r = x % y;
          if (r != 0 && ((r < 0) != (y < 0))) {
            q -= 1;
            r += y;
          }
          return op == "//" ? Value(q) : Value(r);
        }
        double x = as_double(a), y = as_double(b);
        double q = std::floor(x / y);
        return op == "//" ? Value(q) : Value(x - q * y);
      }
      if (op == "%" && a.is_string()) error_at(e.line, "unsupported: '%' string formatting");
    } else if (op == "**") {
      if (ints && as_int(b) >= 0) {
        int64_t r = 1, x = as_int(a);
        for (int64_t i = 0; i < as_int(b) && i < 64; ++i) r *= x;
        return r;
      }
      if (nums) return std::pow(as_double(a), as_double(b));
    }
    error_at(e.line, "unsupported operand types for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.args[0];
    std::vector<Value> args;
    for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
    Kwargs kw = eval_kwargs(e);
    if (callee.kind == ExprKind::Attr) {
      Value obj = eval(*callee.args[0]);
      return call_method(obj, callee.name, args, kw, e.line);
    }
    if (callee.kind != ExprKind::Name) error_at(e.line, "unsupported call expression");
    const std::string& fn = callee.name;
    if (fn == "raise_exception") throw TemplateException(args.empty() ? std::string() : to_python_str(args[0]));
    if (fn == "namespace" || fn == "dict") {
      Value ns = Value::object();
      for (const Value& a : args) {
        if (!a.is_object()) error_at(e.line, fn + "() takes keyword arguments or a dict");
        for (auto it = a.begin(); it != a.end(); ++it) ns[it.key()] = it.value();
      }
      for (auto& [k, v] : kw) ns[k] = v;
      return ns;
    }
    if (fn == "range") {
      for (const Value& a : args)
        if (!a.is_number_integer()) error_at(e.line, "range() takes integers");
      if (args.empty() || args.size() > 3) error_at(e.line, "range() takes 1 to 3 arguments");
      int64_t start = args.size() > 1 ? args[0].get<int64_t>() : 0;
      int64_t stop = args.size() > 1 ? args[1].get<int64_t>() : args[0].get<int64_t>();
      int64_t step = args.size() > 2 ? args[2].get<int64_t>() : 1;
      if (step == 0) error_at(e.line, "range() step must not be zero");
      Value out = Value::array();
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (int64_t(out.size()) >= kMaxRange) error_at(e.line, "range() too large");
        out.push_back(i);
      }
      return out;
    }
    if (fn == "strftime_now") {
      if (args.empty() || !args[0].is_string()) error_at(e.line, "strftime_now() takes a format string");
      std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, args[0].get<std::string>().c_str(), &tm);
      return std::string(buf, n);
    }
    auto m = macros_.find(fn);
    if (m != macros_.end()) return call_macro(*m->second, args, kw, e.line);
    if (Value* v = find_var(fn)) error_at(e.line, "'" + fn + "' (a " + type_name(*v) + ") is not callable");
    error_at(e.line, "unsupported function '" + fn + "()'");
  }

  Value call_macro(const Node& macro, const std::vector<Value>& args, const Kwargs& kw, int line) {
    if (++depth_ > kMaxDepth) error_at(line, "macro calls nested too deeply");
    const size_t n_params = macro.targets.size() - 1;
    if (args.size() > n_params) error_at(line, "macro '" + macro.targets[0] + "' takes " + std::to_string(n_params) + " arguments");
    std::map<std::string, Value> scope;
    const size_t first_default = n_params - macro.defaults.size();
    for (size_t i = 0; i < n_params; ++i) {
      const std::string& p = macro.targets[i + 1];
      if (i < args.size()) scope[p] = args[i];
      else if (i >= first_default) scope[p] = eval(*macro.defaults[i - first_default]);
      else scope[p] = undefined();
    }
    for (const auto& [k, v] : kw) {
      if (std::find(macro.targets.begin() + 1, macro.targets.end(), k) == macro.targets.end())
        error_at(line, "macro '" + macro.targets[0] + "' has no parameter '" + k + "'");
      scope[k] = v;
    }
    scopes_.push_back(std::move(scope));
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    std::string out;
    try {
      exec(*macro.children[0], out);
    } catch (...) {
      scopes_.pop_back();
      loop_depth_ = saved_loops;
      --depth_;
      throw;
    }
    scopes_.pop_back();
    loop_depth_ = saved_loops;
    --depth_;
    return out;
  }

  std::vector<std::map<std::string, Value>> scopes_;
  std::map<std::string, const Node*> macros_;
  int loop_depth_ = 0;
  int depth_ = 0;
};

}  // namespace

namespace {

// Library exceptions (a json type error from a filter given the wrong type, a number out of
// range) become jinja::Error, so callers see one error type for a template that cannot render.
template <typename F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const TemplateException&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(std::string("chat template: ") + e.what());
  }
}

}  // namespace

Template::Template(const std::string& source) : root_(guarded([&] { return parse(lex(source)); })) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Value& variables) const {
  return guarded([&] {
    std::string out;
    Renderer r(variables);
    r.exec(*root_, out);
    return out;
  });
}

}  // namespace mf::jinja
