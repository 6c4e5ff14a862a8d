// Jinja filters and tests, and the Python str/dict methods that chat templates call
// (message.content.strip(), messages[0].get('x'), ...). Behaviour follows Jinja 3.1 and
// transformers' overrides (tojson: ensure_ascii=False, no key sorting, no HTML escaping).
#include <algorithm>
#include <cmath>
#include <set>

#include "tokenizer/jinja_internal.h"
#include "tokenizer/jinja_value.h"

namespace mf::jinja {

namespace {

const std::set<std::string> kFilters = {"trim", "upper", "lower", "length", "count", "tojson", "join", "default", "d",
                                        "first", "last", "string", "int", "float", "capitalize", "title", "replace",
                                        "items", "list", "selectattr", "rejectattr", "select", "reject", "map", "safe",
                                        "e", "escape", "abs", "reverse", "sort", "unique", "min", "max", "sum", "indent",
                                        "dictsort", "round", "wordcount", "center"};
const std::set<std::string> kTests = {"defined", "undefined", "none", "string", "number", "integer", "float", "mapping",
                                      "iterable", "sequence", "boolean", "true", "false", "odd", "even", "divisibleby",
                                      "equalto", "eq", "ne", "lt", "gt", "le", "ge", "greaterthan", "lessthan", "in",
                                      "sameas", "callable", "lower", "upper"};

const char* kSpaces = " \t\n\r\v\f\x1c\x1d\x1e\x1f";

std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) b = s.find_first_not_of(chars);
  if (b == std::string::npos) return "";
  if (right) e = s.find_last_not_of(chars) + 1;
  return s.substr(b, e - b);
}

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
  return s;
}
std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (static_cast<unsigned char>(c) >= 0x80); }

std::string capitalize(const std::string& s) {
  std::string out = lower(s);
  if (!out.empty()) out[0] = upper(out.substr(0, 1))[0];
  return out;
}
std::string title(const std::string& s) {
  std::string out = s;
  bool prev_alpha = false;
  for (char& c : out) {
    if (is_alpha(c)) {
      c = prev_alpha ? lower(std::string(1, c))[0] : upper(std::string(1, c))[0];
      prev_alpha = true;
    } else {
      prev_alpha = false;
    }
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every character
    std::vector<std::string> cps = code_points(s);
    int64_t n = 0;
    for (const std::string& cp : cps) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      out += cp;
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  for (;;) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos || (count >= 0 && n >= count)) break;
    out += s.substr(pos, hit - pos) + to;
    pos = hit + from.size();
    ++n;
  }
  return out + s.substr(pos);
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
  Value out = Value::array();
  if (sep.is_null() || is_undefined(sep)) {  // runs of whitespace, no empty strings
    size_t i = 0;
    int64_t n = 0;
    while (true) {
      i = s.find_first_not_of(kSpaces, i);
      if (i == std::string::npos) break;
      if (maxsplit >= 0 && n >= maxsplit) {
        out.push_back(strip_chars(s.substr(i), kSpaces, false, true));
        break;
      }
      size_t j = s.find_first_of(kSpaces, i);
      out.push_back(s.substr(i, j == std::string::npos ? std::string::npos : j - i));
      ++n;
      if (j == std::string::npos) break;
      i = j;
    }
    return out;
  }
  const std::string d = sep.get<std::string>();
  if (d.empty()) throw Error("split(): empty separator");
  size_t pos = 0;
  int64_t n = 0;
  for (;;) {
    size_t hit = s.find(d, pos);
    if (hit == std::string::npos || (maxsplit >= 0 && n >= maxsplit)) break;
    out.push_back(s.substr(pos, hit - pos));
    pos = hit + d.size();
    ++n;
  }
  out.push_back(s.substr(pos));
  return out;
}

// Iterating a value as Python does: lists by item, dicts by key, strings by character.
Value as_list(const Value& v, int line, const char* what) {
  if (v.is_array()) return v;
  Value out = Value::array();
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) out.push_back(it.key());
  } else if (v.is_string()) {
    for (std::string& cp : code_points(v.get_ref<const std::string&>())) out.push_back(cp);
  } else if (!is_undefined(v)) {
    error_at(line, std::string(what) + ": '" + type_name(v) + "' object is not iterable");
  }
  return out;
}

const Value* kwarg(const Kwargs& kw, const std::string& name) {
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}
// Positional argument i, else keyword `name`, else null.
Value arg(const std::vector<Value>& args, const Kwargs& kw, size_t i, const std::string& name, Value dflt = nullptr) {
  if (i < args.size()) return args[i];
  if (const Value* v = kwarg(kw, name)) return *v;
  return dflt;
}

Value attribute_of(const Value& v, const std::string& path) {
  Value cur = v;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t dot = path.find('.', pos);
    std::string key = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (cur.is_object() && cur.contains(key)) cur = cur[key];
    else if (cur.is_array() && !key.empty() && std::all_of(key.begin(), key.end(), ::isdigit) && std::stoul(key) < cur.size())
      cur = cur[std::stoul(key)];
    else return undefined();
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return cur;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

bool less_than(const Value& a, const Value& b) {
  if ((a.is_number() || a.is_boolean()) && (b.is_number() || b.is_boolean())) return as_double(a) < as_double(b);
  if (a.is_string() && b.is_string()) return a.get_ref<const std::string&>() < b.get_ref<const std::string&>();
  return a < b;
}

}  // namespace

bool is_known_filter(const std::string& name) { return kFilters.count(name) > 0; }
bool is_known_test(const std::string& name) { return kTests.count(name) > 0; }

bool apply_test(const std::string& name, const Value& v, const std::vector<Value>& args, int line) {
  auto need = [&](size_t n) {
    if (args.size() < n) error_at(line, "test 'is " + name + "' needs an argument");
  };
  if (name == "defined") return !is_undefined(v);
  if (name == "undefined") return is_undefined(v);
  if (name == "none") return v.is_null();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_number_integer();
  if (name == "float") return v.is_number_float();
  if (name == "boolean") return v.is_boolean();
  if (name == "true") return v.is_boolean() && v.get<bool>();
  if (name == "false") return v.is_boolean() && !v.get<bool>();
  if (name == "mapping") return v.is_object();
  if (name == "iterable") return v.is_array() || v.is_object() || v.is_string();
  if (name == "sequence") return v.is_array() || v.is_object() || v.is_string();
  if (name == "callable") return false;
  if (name == "lower") return v.is_string() && lower(v.get<std::string>()) == v.get<std::string>();
  if (name == "upper") return v.is_string() && upper(v.get<std::string>()) == v.get<std::string>();
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_number()) error_at(line, "test 'is " + name + "' on a " + type_name(v));
    int64_t x = as_int(v);
    if (name == "odd") return x % 2 != 0;
    if (name == "even") return x % 2 == 0;
    need(1);
    int64_t d = as_int(args[0]);
    if (d == 0) error_at(line, "divisibleby(0)");
    return x % d == 0;
  }
  need(1);
  const Value& o = args[0];
  if (name == "equalto" || name == "eq") return values_equal(v, o);
  if (name == "ne") return !values_equal(v, o);
  if (name == "sameas") return values_equal(v, o) && v.type() == o.type();
  if (name == "lt" || name == "lessthan") return less_than(v, o);
  if (name == "gt" || name == "greaterthan") return less_than(o, v);
  if (name == "le") return !less_than(o, v);
  if (name == "ge") return !less_than(v, o);
  if (name == "in") {
    if (o.is_string() && v.is_string()) return o.get<std::string>().find(v.get<std::string>()) != std::string::npos;
    if (o.is_object()) return v.is_string() && o.contains(v.get<std::string>());
    if (o.is_array())
      return std::any_of(o.begin(), o.end(), [&](const Value& x) { return values_equal(x, v); });
    return false;
  }
  error_at(line, "unsupported test 'is " + name + "'");
}

Value apply_filter(const std::string& name, const Value& v, const std::vector<Value>& args, const Kwargs& kw, int line) {
  auto str_of = [&](const Value& x) { return to_python_str(x); };
  if (name == "safe") return v;
  if (name == "string") return str_of(v);
  if (name == "e" || name == "escape") return html_escape(str_of(v));
  if (name == "trim") {
    Value chars = arg(args, kw, 0, "chars");
    return strip_chars(str_of(v), chars.is_string() ? chars.get<std::string>() : kSpaces, true, true);
  }
  if (name == "upper") return upper(str_of(v));
  if (name == "lower") return lower(str_of(v));
  if (name == "capitalize") return capitalize(str_of(v));
  if (name == "title") return title(str_of(v));
  if (name == "replace") {
    if (args.size() < 2) error_at(line, "replace() needs two arguments");
    Value cnt = arg(args, kw, 2, "count");
    return replace_all(str_of(v), str_of(args[0]), str_of(args[1]), cnt.is_number() ? as_int(cnt) : -1);
  }
  if (name == "length" || name == "count") {
    if (v.is_string()) return int64_t(code_points(v.get_ref<const std::string&>()).size());
    if (v.is_array() || v.is_object()) return int64_t(v.size());
    if (is_undefined(v)) return int64_t(0);
    error_at(line, "length of a " + type_name(v));
  }
  if (name == "wordcount") return int64_t(split(str_of(v), nullptr, -1).size());
  if (name == "tojson") {
    Value indent = arg(args, kw, 0, "indent");
    return python_json(v, indent.is_number() ? int(as_int(indent)) : -1);
  }
  if (name == "default" || name == "d") {
    Value dflt = arg(args, kw, 0, "default_value", "");
    const bool boolean = truthy(arg(args, kw, 1, "boolean", false));
    if (is_undefined(v) || (boolean && !truthy(v))) return dflt;
    return v;
  }
  if (name == "int") {
    if (v.is_number() || v.is_boolean()) return as_int(v);
    if (v.is_string()) {
      try {
        size_t used = 0;
        std::string s = strip_chars(v.get<std::string>(), kSpaces, true, true);
        int64_t x = std::stoll(s, &used);
        if (used == s.size()) return x;
        return int64_t(std::stod(s));
      } catch (const std::exception&) {
      }
    }
    return arg(args, kw, 0, "default", int64_t(0));
  }
  if (name == "float") {
    if (v.is_number() || v.is_boolean()) return as_double(v);
    if (v.is_string()) {
      try {
        return std::stod(v.get<std::string>());
      } catch (const std::exception&) {
      }
    }
    return arg(args, kw, 0, "default", 0.0);
  }
  if (name == "abs") {
    if (v.is_number_float()) return std::fabs(v.get<double>());
    if (v.is_number()) return std::llabs(as_int(v));
    error_at(line, "abs of a " + type_name(v));
  }
  if (name == "round") {
    int64_t prec = as_int(arg(args, kw, 0, "precision", int64_t(0)));
    double scale = std::pow(10.0, double(prec));
    return std::round(as_double(v) * scale) / scale;
  }
  if (name == "items") {
    if (is_undefined(v)) return Value::array();
    if (!v.is_object()) error_at(line, "items() of a " + type_name(v));
    Value out = Value::array();
    for (auto it = v.begin(); it != v.end(); ++it) out.push_back(Value::array({it.key(), it.value()}));
    return out;
  }
  if (name == "dictsort") {
    Value out = apply_filter("items", v, {}, {}, line);
    std::vector<Value> items(out.begin(), out.end());
    std::stable_sort(items.begin(), items.end(), [](const Value& a, const Value& b) { return less_than(a[0], b[0]); });
    return Value(items);
  }
  if (name == "list") return as_list(v, line, "list");
  Value list = as_list(v, line, name.c_str());
  if (name == "first") return list.empty() ? undefined() : list.front();
  if (name == "last") return list.empty() ? undefined() : list.back();
  if (name == "reverse") {
    if (v.is_string()) {
      std::string out;
      for (auto it = list.rbegin(); it != list.rend(); ++it) out += it->get<std::string>();
      return out;
    }
    std::reverse(list.begin(), list.end());
    return list;
  }
  if (name == "join") {
    const std::string sep = str_of(arg(args, kw, 0, "d", ""));
    Value attr = arg(args, kw, 1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& x : list) {
      if (!first) out += sep;
      first = false;
      out += str_of(attr.is_null() ? x : attribute_of(x, str_of(attr)));
    }
    return out;
  }
  if (name == "sort" || name == "unique" || name == "min" || name == "max") {
    Value attr = arg(args, kw, name == "sort" ? 2 : 1, "attribute");
    auto key = [&](const Value& x) { return attr.is_null() ? x : attribute_of(x, str_of(attr)); };
    std::vector<Value> items(list.begin(), list.end());
    if (name == "unique") {
      Value out = Value::array();
      for (const Value& x : items)
        if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return values_equal(key(x), key(y)); })) out.push_back(x);
      return out;
    }
    std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) { return less_than(key(a), key(b)); });
    if (name == "min") return items.empty() ? undefined() : items.front();
    if (name == "max") return items.empty() ? undefined() : items.back();
    if (truthy(arg(args, kw, 0, "reverse", false))) std::reverse(items.begin(), items.end());
    return Value(items);
  }
  if (name == "sum") {
    Value attr = arg(args, kw, 0, "attribute");
    Value total = arg(args, kw, 1, "start", int64_t(0));
    for (const Value& x : list) {
      Value y = attr.is_null() ? x : attribute_of(x, str_of(attr));
      if (total.is_number_float() || y.is_number_float()) total = as_double(total) + as_double(y);
      else total = as_int(total) + as_int(y);
    }
    return total;
  }
  if (name == "select" || name == "reject") {
    Value out = Value::array();
    for (const Value& x : list) {
      bool ok = args.empty() ? truthy(x) : apply_test(str_of(args[0]), x, {args.begin() + 1, args.end()}, line);
      if (ok == (name == "select")) out.push_back(x);
    }
    return out;
  }
  if (name == "selectattr" || name == "rejectattr") {
    if (args.empty()) error_at(line, name + "() needs an attribute name");
    Value out = Value::array();
    for (const Value& x : list) {
      Value a = attribute_of(x, str_of(args[0]));
      bool ok = args.size() < 2 ? truthy(a) : apply_test(str_of(args[1]), a, {args.begin() + 2, args.end()}, line);
      if (ok == (name == "selectattr")) out.push_back(x);
    }
    return out;
  }
  if (name == "map") {
    Value out = Value::array();
    if (const Value* attr = kwarg(kw, "attribute")) {
      Value dflt = kwarg(kw, "default") ? *kwarg(kw, "default") : undefined();
      for (const Value& x : list) {
        Value a = attribute_of(x, str_of(*attr));
        out.push_back(is_undefined(a) ? dflt : a);
      }
      return out;
    }
    if (args.empty()) error_at(line, "map() needs a filter name or attribute=");
    const std::string f = str_of(args[0]);
    if (!is_known_filter(f)) error_at(line, "unsupported filter '" + f + "'");
    for (const Value& x : list) out.push_back(apply_filter(f, x, {args.begin() + 1, args.end()}, {}, line));
    return out;
  }
  if (name == "indent") {
    const int64_t width = as_int(arg(args, kw, 0, "width", int64_t(4)));
    const bool first = truthy(arg(args, kw, 1, "first", false));
    const std::string pad(size_t(std::max<int64_t>(width, 0)), ' ');
    const std::string s = str_of(v);
    std::string out;
    bool line_start = first;
    for (size_t i = 0; i < s.size(); ++i) {
      if (line_start && s[i] != '\n') out += pad;
      line_start = false;
      out += s[i];
      if (s[i] == '\n') line_start = true;
    }
    return out;
  }
  if (name == "center") {
    const int64_t width = as_int(arg(args, kw, 0, "width", int64_t(80)));
    std::string s = str_of(v);
    int64_t n = int64_t(code_points(s).size());
    if (n >= width) return s;
    int64_t left = (width - n) / 2 + ((width - n) % 2 & width % 2);
    return std::string(size_t(left), ' ') + s + std::string(size_t(width - n - left), ' ');
  }
  error_at(line, "unsupported filter '" + name + "'");
}

Value call_method(const Value& obj, const std::string& name, const std::vector<Value>& args, const Kwargs& kw, int line) {
  if (obj.is_string()) {
    const std::string& s = obj.get_ref<const std::string&>();
    auto chars = [&](size_t i) {
      Value c = arg(args, kw, i, "chars");
      return c.is_string() ? c.get<std::string>() : std::string(kSpaces);
    };
    if (name == "strip") return strip_chars(s, chars(0), true, true);
    if (name == "lstrip") return strip_chars(s, chars(0), true, false);
    if (name == "rstrip") return strip_chars(s, chars(0), false, true);
    if (name == "upper") return upper(s);
    if (name == "lower") return lower(s);
    if (name == "title") return title(s);
    if (name == "capitalize") return capitalize(s);
    if (name == "split") {
      Value maxsplit = arg(args, kw, 1, "maxsplit", int64_t(-1));
      return split(s, arg(args, kw, 0, "sep"), as_int(maxsplit));
    }
    if (name == "startswith" || name == "endswith") {
      Value p = arg(args, kw, 0, "prefix");
      std::vector<std::string> options;
      if (p.is_array())
        for (const Value& x : p) options.push_back(to_python_str(x));
      else if (p.is_string()) options.push_back(p.get<std::string>());
      else error_at(line, name + "() needs a string");
      for (const std::string& o : options) {
        if (o.size() > s.size()) continue;
        if (name == "startswith" ? s.compare(0, o.size(), o) == 0 : s.compare(s.size() - o.size(), o.size(), o) == 0) return true;
      }
      return false;
    }
    if (name == "replace") {
      if (args.size() < 2) error_at(line, "replace() needs two arguments");
      Value cnt = arg(args, kw, 2, "count", int64_t(-1));
      return replace_all(s, to_python_str(args[0]), to_python_str(args[1]), as_int(cnt));
    }
    if (name == "find" || name == "count") {
      if (args.empty()) error_at(line, name + "() needs an argument");
      const std::string sub = to_python_str(args[0]);
      if (name == "find") {
        size_t hit = s.find(sub);
        return hit == std::string::npos ? int64_t(-1) : int64_t(code_points(s.substr(0, hit)).size());
      }
      if (sub.empty()) return int64_t(code_points(s).size() + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return n;
    }
    if (name == "join") {
      std::string out;
      bool first = true;
      for (const Value& x : as_list(arg(args, kw, 0, "iterable"), line, "join")) {
        if (!first) out += s;
        first = false;
        out += to_python_str(x);
      }
      return out;
    }
  } else if (obj.is_object()) {
    if (name == "items") return apply_filter("items", obj, {}, {}, line);
    if (name == "keys" || name == "values") {
      Value out = Value::array();
      for (auto it = obj.begin(); it != obj.end(); ++it) out.push_back(name == "keys" ? Value(it.key()) : it.value());
      return out;
    }
    if (name == "get") {
      if (args.empty()) error_at(line, "get() needs a key");
      const Value& key = args[0];
      if (key.is_string() && obj.contains(key.get<std::string>())) return obj[key.get<std::string>()];
      return arg(args, kw, 1, "default", nullptr);
    }
  }
  error_at(line, "unsupported method '" + type_name(obj) + "." + name + "()'");
}

}  // namespace mf::jinja
