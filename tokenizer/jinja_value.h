// Jinja value helpers with Python semantics (see jinja_value.cpp).
#pragma once
#include <string>
#include <vector>

#include "tokenizer/jinja.h"

namespace mf::jinja {

Value undefined();
bool is_undefined(const Value& v);
bool truthy(const Value& v);
std::string type_name(const Value& v);  // Python's: str, int, list, dict, NoneType, ...
std::string float_repr(double x);       // Python's repr(float)
// json.dumps(v, ensure_ascii=False, indent=...) as transformers' tojson calls it; indent < 0: none.
std::string python_json(const Value& v, int indent);
bool values_equal(const Value& a, const Value& b);  // Python ==, numbers across int/float/bool
double as_double(const Value& v);
int64_t as_int(const Value& v);
std::vector<std::string> code_points(const std::string& s);  // UTF-8 string split per code point

}  // namespace mf::jinja

namespace mf::jinja {

using Kwargs = std::vector<std::pair<std::string, Value>>;

// Filters, tests and methods (jinja_builtins.cpp); errors name the line.
Value apply_filter(const std::string& name, const Value& v, const std::vector<Value>& args, const Kwargs& kwargs, int line);
bool apply_test(const std::string& name, const Value& v, const std::vector<Value>& args, int line);
Value call_method(const Value& obj, const std::string& name, const std::vector<Value>& args, const Kwargs& kwargs, int line);

}  // namespace mf::jinja
