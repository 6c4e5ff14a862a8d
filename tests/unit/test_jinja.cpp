// The Jinja interpreter behind chat templates (tokenizer/jinja.h): expressions, filters,
// whitespace control, loops, scoping, and clear errors for malformed or unsupported input.
#include <gtest/gtest.h>

#include <random>

#include "tokenizer/chat_template.h"
#include "tokenizer/jinja.h"

namespace mf::jinja {
namespace {

std::string render(const std::string& src, const Value& vars = Value::object()) { return Template(src).render(vars); }

// The message of the jinja::Error a template raises (parsing or rendering), "" if none.
std::string error_of(const std::string& src, const Value& vars = Value::object()) {
  try {
    render(src, vars);
  } catch (const TemplateException& e) {
    return std::string("raised: ") + e.what();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Jinja, LiteralsAndArithmetic) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}"),
            "7|9|3|-4|1|2|1024");
  EXPECT_EQ(render("{{ 1 / 2 }}|{{ 4 / 2 }}|{{ 1.5 + 1 }}|{{ 1e20 }}|{{ 0.0001 }}|{{ 100.0 }}"), "0.5|2.0|2.5|1e+20|0.0001|100.0");
  EXPECT_EQ(render("{{ 'a\\n\\'b\\'' }}|{{ \"x\\ty\" }}|{{ '\\u00e9' }}"), "a\n'b'|x\ty|\xc3\xa9");
  EXPECT_EQ(render("{{ true }} {{ False }} {{ none }} {{ None }}"), "True False None None");
  EXPECT_EQ(render("{{ [1, 'a', none] }} {{ {'k': [true]} }}"), "[1, 'a', None] {'k': [True]}");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }}|{{ 'ab' + 'cd' }}|{{ [1] + [2] }}|{{ 'ab' * 3 }}"), "a1None|abcd|[1, 2]|ababab");
  EXPECT_EQ(render("{{ undefined_thing }}|{{ x.y if x is defined else 'no' }}"), "|no");
}

TEST(Jinja, ComparisonsAndLogic) {
  EXPECT_EQ(render("{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' == 'a' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ 'b' > 'a' }}"),
            "True False True True True True");
  EXPECT_EQ(render("{{ 1 and 0 }} {{ 0 or 'x' }} {{ not [] }} {{ 'a' in 'cat' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }}"),
            "0 x True True True True");
  EXPECT_EQ(render("{{ 'yes' if 1 > 0 else 'no' }}|{{ 'yes' if false }}"), "yes|");
  EXPECT_EQ(render("{% if not x is defined %}a{% endif %}{% if y is not none %}b{% endif %}", {{"y", 1}}), "ab");
}

TEST(Jinja, AccessAndSlices) {
  Value vars = {{"m", {{"role", "user"}, {"content", "hi"}}}, {"xs", {1, 2, 3, 4}}, {"s", "h\xc3\xa9llo"}};
  EXPECT_EQ(render("{{ m['role'] }} {{ m.content }} {{ m.missing }}|{{ xs[0] }} {{ xs[-1] }} {{ xs.1 }}", vars), "user hi |1 4 2");
  EXPECT_EQ(render("{{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[-2:] }} {{ s[1] }} {{ s[::-1] }} {{ s|length }}", vars),
            "[2, 3, 4] [1, 2] [4, 3, 2, 1] [3, 4] \xc3\xa9 oll\xc3\xa9h 5");
}

TEST(Jinja, Filters) {
  Value vars = {{"xs", {"b", "a", "c"}}, {"d", {{"x", 1}, {"y", "two"}}},
                {"ms", {{{"role", "user"}, {"n", 1}}, {{"role", "bot"}, {"n", 2}}, {{"role", "user"}, {"n", 3}}}}};
  EXPECT_EQ(render("{{ '  hi  '|trim }}|{{ 'aB'|upper }}|{{ 'aB'|lower }}|{{ 'hello world'|capitalize }}|{{ 'hello world'|title }}"),
            "hi|AB|ab|Hello world|Hello World");
  EXPECT_EQ(render("{{ xs|length }} {{ xs|join(', ') }} {{ xs|first }} {{ xs|last }} {{ xs|sort|join }} {{ xs|reverse|list }}", vars),
            "3 b, a, c b c abc ['c', 'a', 'b']");
  EXPECT_EQ(render("{{ nope|default('dflt') }} {{ ''|default('e', true) }} {{ 'v'|d('x') }} {{ '42'|int + 1 }} {{ 3|string ~ 'x' }}"),
            "dflt e v 43 3x");
  EXPECT_EQ(render("{{ 'a-b-c'|replace('-', '+') }} {{ '<&>'|e }} {{ '<&>'|safe }}"), "a+b+c &lt;&amp;&gt; <&>");
  EXPECT_EQ(render("{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}", vars), "x=1;y=two;");
  EXPECT_EQ(render("{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='n')|list }} {{ ms|rejectattr('role', 'eq', 'user')|length }}",
                   vars),
            "[1, 3] 1");
  EXPECT_EQ(render("{{ [1, 2, 3, 4]|select('even')|list }} {{ ['x', 'y']|reject('equalto', 'x')|list }}"), "[2, 4] ['y']");
}

TEST(Jinja, ToJsonMatchesTransformers) {
  Value vars = {{"v", {{"name", "f"}, {"args", {{"a", 1.5}, {"b", {true, nullptr}}, {"s", "\xc3\xa9\"\n"}}}, {"e", Value::array()}}}};
  EXPECT_EQ(render("{{ v|tojson }}", vars), R"({"name": "f", "args": {"a": 1.5, "b": [true, null], "s": "é\"\n"}, "e": []})");
  EXPECT_EQ(render("{{ {'a': [1, 2]}|tojson(indent=2) }}"), "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
}

TEST(Jinja, Methods) {
  EXPECT_EQ(render("{{ '  x  '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'a  '.rstrip() }}|{{ 'a b  c'.split() }}|{{ 'a,b'.split(',') }}"),
            "x|axx|a|['a', 'b', 'c']|['a', 'b']");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'Ab'.upper() }} {{ 'Ab'.lower() }} {{ 'aa'.replace('a', 'b') }}"),
            "True True AB ab bb");
  Value vars = {{"d", {{"k", "v"}}}};
  EXPECT_EQ(render("{{ d.get('k') }} {{ d.get('z', 'dflt') }} {{ d.get('z') }} {% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}", vars),
            "v dflt None kv");
}

TEST(Jinja, WhitespaceControl) {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before one.
  EXPECT_EQ(render("{% if true %}\n  a\n{% endif %}\nb"), "  a\nb");
  EXPECT_EQ(render("x\n    {% if true %}y{% endif %}\n"), "x\ny");
  EXPECT_EQ(render("a  {{- 'b' -}}  \n c"), "abc");
  EXPECT_EQ(render("a\n  {%- if true -%}\n  b  {%- endif %}"), "ab");
  EXPECT_EQ(render("{# comment #}\nx  {#- c -#}  y"), "xy");
  EXPECT_EQ(render("a\n  {%+ if true %}b{% endif %}"), "a\n  b");
  EXPECT_EQ(render("{{ 'x' }}\ny"), "x\ny");  // no trimming after expressions
}

TEST(Jinja, LoopsAndScopes) {
  Value vars = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }} {% endfor %}",
                   vars),
            "103TrueFalse3 212FalseFalse3 321FalseTrue3 ");
  EXPECT_EQ(render("{% for x in xs if x != 'b' %}{{ x }}{{ loop.index }}{% endfor %}", vars), "a1c2");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in xs %}{% if x == 'b' %}{% continue %}{% endif %}{% if x == 'c' %}{% break %}{% endif %}{{ x }}{% endfor %}",
                   vars),
            "a");
  // set inside a loop stays there; a namespace carries state out.
  EXPECT_EQ(render("{% set n = 0 %}{% for x in xs %}{% set n = n + 1 %}{% endfor %}{{ n }}", vars), "0");
  EXPECT_EQ(render("{% set ns = namespace(n=0, seen=false) %}{% for x in xs %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}{{ ns.seen }}",
                   vars),
            "3False");
  EXPECT_EQ(render("{% set a, b = [1, 2] %}{{ b }}{{ a }}{% set t %}in {{ a }}{% endset %}[{{ t }}]"), "21[in 1]");
  EXPECT_EQ(render("{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 6, 2) %}{{ i }}{% endfor %}"), "012135");
}

TEST(Jinja, Macros) {
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}"),
            "Hi A! Hi B?");
}

TEST(Jinja, Tests) {
  Value vars = {{"s", "x"}, {"d", Value::object()}, {"l", {1}}, {"n", nullptr}, {"i", 3}};
  EXPECT_EQ(render("{{ s is string }}{{ d is mapping }}{{ l is iterable }}{{ n is none }}{{ i is number }}{{ i is odd }}"
                   "{{ i is divisibleby 3 }}{{ s is equalto 'x' }}{{ q is undefined }}{{ l is sequence }}{{ d is string }}",
                   vars),
            "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueFalse");
}

TEST(Jinja, RaiseExceptionCarriesTheMessage) {
  try {
    render("{{ raise_exception('Roles must alternate') }}");
    FAIL() << "no exception";
  } catch (const TemplateException& e) {
    EXPECT_EQ(std::string(e.what()), "Roles must alternate");
  }
}

TEST(Jinja, MalformedTemplatesAreClearErrors) {
  EXPECT_TRUE(contains(error_of("{{ x "), "unclosed '{{'")) << error_of("{{ x ");
  EXPECT_TRUE(contains(error_of("a\n{% if x %}"), "line 2")) << error_of("a\n{% if x %}");
  EXPECT_TRUE(contains(error_of("{% if x %}"), "expected '{% endif %}'"));
  EXPECT_TRUE(contains(error_of("{% for x in y %}"), "endfor"));
  EXPECT_TRUE(contains(error_of("{# never closed"), "unclosed comment"));
  EXPECT_TRUE(contains(error_of("{% endif %}"), "without its opening tag"));
  EXPECT_TRUE(contains(error_of("{{ x|frobnicate }}"), "unsupported filter 'frobnicate'"));
  EXPECT_TRUE(contains(error_of("{{ x is frobnicated }}"), "unsupported test"));
  EXPECT_TRUE(contains(error_of("{{ 'abc }}"), "unclosed '{{'"));
  EXPECT_TRUE(contains(error_of("{% set x = 'abc %}{{ x }}"), "unclosed"));
  EXPECT_TRUE(contains(error_of("{{ (1 + }}"), "unexpected"));
  EXPECT_TRUE(contains(error_of("{{ }}"), "empty expression"));
  EXPECT_TRUE(contains(error_of("{{ 1 2 }}"), "unexpected integer 2"));
  EXPECT_TRUE(contains(error_of("{{ a ? b }}"), "unexpected character '?'"));
}

TEST(Jinja, UnsupportedFeaturesAreClearErrors) {
  EXPECT_TRUE(contains(error_of("{% include 'x.jinja' %}"), "unsupported tag '{% include %}'"));
  EXPECT_TRUE(contains(error_of("{% raw %}x{% endraw %}"), "unsupported tag '{% raw %}'"));
  EXPECT_TRUE(contains(error_of("{% for x in xs recursive %}{% endfor %}"), "recursive"));
  EXPECT_TRUE(contains(error_of("{{ lipsum() }}"), "unsupported function 'lipsum()'"));
  EXPECT_TRUE(contains(error_of("{{ 'a'.zfill(3) }}"), "unsupported method 'str.zfill()'"));
  EXPECT_TRUE(contains(error_of("{{ 'a' - 1 }}"), "unsupported operand types for -"));
  EXPECT_TRUE(contains(error_of("{{ '%s' % 1 }}"), "string formatting"));
  EXPECT_TRUE(contains(error_of("{% for x in 3 %}{% endfor %}"), "not iterable"));
  EXPECT_TRUE(contains(error_of("{% set x = 1 %}{% set x.a = 2 %}"), "not a namespace"));
  EXPECT_TRUE(contains(error_of("{% break %}"), "outside a for loop"));
  // Wrong argument types are errors too, not crashes.
  EXPECT_FALSE(error_of("{{ 'a b'.split(1) }}").empty());
  EXPECT_FALSE(error_of("{{ range('a') }}").empty());
  EXPECT_FALSE(error_of("{{ 'abc'.startswith(1) }}").empty());
  EXPECT_FALSE(error_of("{{ 1e999 }}").empty());
}

TEST(Jinja, DeepNestingDoesNotCrash) {
  EXPECT_TRUE(contains(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"), "nested too deeply"));
  EXPECT_TRUE(contains(error_of("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}"), "nested too deeply"));
  EXPECT_TRUE(contains(error_of("{{ " + std::string(100000, '[') + " }}"), "nested too deeply"));
  std::string deep_blocks;
  for (int i = 0; i < 5000; ++i) deep_blocks += "{% if true %}";
  EXPECT_TRUE(contains(error_of(deep_blocks), "nested too deeply"));
  std::string nots;
  for (int i = 0; i < 100000; ++i) nots += "not ";
  EXPECT_TRUE(contains(error_of("{{ " + nots + "1 }}"), "nested too deeply"));
  // Moderate nesting is fine.
  EXPECT_EQ(render("{{ " + std::string(30, '(') + "1" + std::string(30, ')') + " }}"), "1");
}

// Random bytes and random mixes of template syntax never crash: they render or throw jinja::Error.
TEST(Jinja, RandomInputNeverCrashes) {
  const char* parts[] = {"{{", "}}", "{%", "%}", "{#", "#}", "-", "+", " if ", " for ", " in ", " endif ", " endfor ", " set ",
                         "x", "'s'", ".split(1)", "|join(1)", "|map('trim')", "1e999", ".get(", "\"", "(", ")", "[", "]", ":", "|", "trim", ".", "1", "loop", " else ", " not ", "=", "\n", "~"};
  std::mt19937 rng(7);
  int rendered = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string src;
    const int n = int(rng() % 20);
    for (int k = 0; k < n; ++k) src += parts[rng() % (sizeof parts / sizeof parts[0])];
    try {
      Template(src).render({{"x", {1, 2}}});
      ++rendered;
    } catch (const Error&) {
    } catch (const TemplateException&) {
    }
  }
  EXPECT_GT(rendered, 0);
}

TEST(ChatTemplate, ApplyPassesMessagesAndSpecialTokens) {
  const std::string t =
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m['content'] }}{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}{{ eos_token }}{{ pad_token is defined }}";
  EXPECT_EQ(mf::apply_chat_template(t, {{"system", "S"}, {"user", "U"}}, true, "<s>", "</s>"), "<s><system>S<user>U<assistant></s>False");
  EXPECT_EQ(mf::apply_chat_template(t, {{"user", "U"}}, false, "", ""), "<user>UFalse");
}

}  // namespace
}  // namespace mf::jinja
