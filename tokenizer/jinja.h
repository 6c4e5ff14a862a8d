// A small Jinja2 interpreter for the subset that Hugging Face chat templates use, rendering
// as transformers' apply_chat_template does (trim_blocks and lstrip_blocks on, loop controls,
// transformers' tojson and raise_exception). Values are nlohmann::ordered_json; Jinja's
// "undefined" is a discarded json value.
//
// Supported: {{ }}, {% %}, {# #} with whitespace control (-, +); if/elif/else, for (loop.*,
// tuple targets, inline if, else), break/continue, set (names, tuples, ns.attr, set blocks),
// macro (positional/keyword arguments with defaults), generation (transparent); literals,
// attribute/subscript/slice access, arithmetic, ~, comparisons, and/or/not, in, is-tests,
// ternaries, the common filters and the str/dict methods templates call (see jinja_eval.cpp).
// Not supported (each a jinja::Error naming it): raw, include/import/extends/block, call
// blocks, filter blocks, recursive loops, loop.cycle, autoescaping.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace mf::jinja {

using Value = nlohmann::ordered_json;

// A template that cannot be parsed or uses an unsupported construct (raised while parsing or
// rendering). The message names the feature and the template line.
class Error : public mf::Error {
 public:
  using mf::Error::Error;
};

// The template itself refused its input: raise_exception('msg'). what() is the message.
class TemplateException : public mf::Error {
 public:
  using mf::Error::Error;
};

struct Node;

class Template {
 public:
  // Parses; throws jinja::Error for malformed templates (unclosed tags, unknown filters/tests/tags).
  explicit Template(const std::string& source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  // Renders with the given top-level variables (a json object). Throws jinja::Error or
  // TemplateException. Thread-safe: rendering keeps its state on the stack.
  std::string render(const Value& variables) const;

 private:
  std::unique_ptr<Node> root_;
};

// Python's str() of a value, as Jinja prints it ("None", "True", "['a', 1]").
std::string to_python_str(const Value& v);

}  // namespace mf::jinja
