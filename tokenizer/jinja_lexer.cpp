// Jinja lexer: splits a template at {{ }}, {% %} and {# #}, applies whitespace control the way
// transformers configures Jinja (trim_blocks, lstrip_blocks, plus the "-" and "+" modifiers),
// and tokenises the expressions inside the tags.
#include <cstring>

#include "tokenizer/jinja_internal.h"
#include "tokenizer/unicode.h"

namespace mf::jinja {

void error_at(int line, const std::string& what) { throw Error(cat("chat template line ", line, ": ", what)); }

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

int count_lines(const std::string& s, size_t from, size_t to) {
  int n = 0;
  for (size_t i = from; i < to && i < s.size(); ++i) n += s[i] == '\n';
  return n;
}

// Tokenises the inside of one tag (Python-like string escapes, ints, floats, operators).
std::vector<Tok> tokenize_expr(const std::string& s, int line) {
  std::vector<Tok> toks;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (is_space(c)) {
      line += c == '\n';
      ++i;
      continue;
    }
    Tok t;
    t.line = line;
    if (is_name_start(c)) {
      size_t j = i;
      while (j < s.size() && (is_name_start(s[j]) || is_digit(s[j]))) ++j;
      t.kind = TokKind::Name;
      t.text = s.substr(i, j - i);
      i = j;
    } else if (is_digit(c)) {
      size_t j = i;
      while (j < s.size() && (is_digit(s[j]) || s[j] == '_')) ++j;
      bool is_float = false;
      if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) {
        is_float = true;
        ++j;
        while (j < s.size() && is_digit(s[j])) ++j;
      }
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < s.size() && is_digit(s[k])) {
          is_float = true;
          j = k;
          while (j < s.size() && is_digit(s[j])) ++j;
        }
      }
      std::string num;
      for (size_t k = i; k < j; ++k)
        if (s[k] != '_') num += s[k];
      if (is_float) {
        t.kind = TokKind::Float;
        t.f = std::stod(num);
      } else {
        t.kind = TokKind::Int;
        try {
          t.i = std::stoll(num);
        } catch (const std::exception&) {
          error_at(line, "integer literal " + num + " is too large");
        }
      }
      i = j;
    } else if (c == '\'' || c == '"') {
      const char q = c;
      size_t j = i + 1;
      std::string out;
      for (;; ++j) {
        if (j >= s.size()) error_at(line, "unterminated string literal");
        char d = s[j];
        if (d == q) break;
        if (d == '\n') ++line;
        if (d != '\\') {
          out += d;
          continue;
        }
        if (++j >= s.size()) error_at(line, "unterminated string literal");
        char e = s[j];
        switch (e) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case '\\': out += '\\'; break;
          case '\'': out += '\''; break;
          case '"': out += '"'; break;
          case 'a': out += '\a'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'v': out += '\v'; break;
          case '0': out += '\0'; break;
          case '\n': ++line; break;  // line continuation
          case 'x': case 'u': case 'U': {
            const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            if (j + n >= s.size()) error_at(line, "truncated \\" + std::string(1, e) + " escape");
            uint32_t cp = 0;
            for (size_t k = 1; k <= n; ++k) {
              char h = s[j + k];
              int v = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
              if (v < 0) error_at(line, "bad \\" + std::string(1, e) + " escape");
              cp = cp * 16 + uint32_t(v);
            }
            unicode::append_utf8(out, cp);
            j += n;
            break;
          }
          default:  // Python keeps unknown escapes as written
            out += '\\';
            out += e;
        }
      }
      t.kind = TokKind::String;
      t.text = std::move(out);
      i = j + 1;
    } else {
      static const char* ops[] = {"**", "//", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ".", ",", ":",
                                  "|",  "~",  "+",  "-",  "*",  "/",  "%", "<", ">", "="};
      const char* found = nullptr;
      for (const char* op : ops)
        if (s.compare(i, std::strlen(op), op) == 0) {
          found = op;
          break;
        }
      if (!found) error_at(line, "unexpected character '" + std::string(1, c) + "'");
      t.kind = TokKind::Op;
      t.text = found;
      i += t.text.size();
    }
    toks.push_back(std::move(t));
  }
  Tok end;
  end.line = line;
  toks.push_back(end);
  return toks;
}

// End of a tag's contents: the position of `close` ("}}", "%}" or "#}") outside string literals.
size_t find_close(const std::string& s, size_t from, const char* close, bool skip_strings) {
  for (size_t i = from; i + 1 < s.size(); ++i) {
    char c = s[i];
    if (skip_strings && (c == '\'' || c == '"')) {
      for (++i; i < s.size() && s[i] != c; ++i)
        if (s[i] == '\\') ++i;
      continue;
    }
    if (c == close[0] && s[i + 1] == close[1]) return i;
  }
  return std::string::npos;
}

}  // namespace

std::vector<Segment> lex(const std::string& src) {
  std::vector<Segment> out;
  size_t pos = 0;
  int line = 1;
  bool strip_next = false;  // the previous tag ended with "-": strip all leading whitespace
  bool trim_next = false;   // the previous block tag (trim_blocks): drop one newline
  bool at_start = true;     // the next text begins at the start of the template
  while (pos <= src.size()) {
    size_t open = src.find('{', pos);
    while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' && src[open + 1] != '#')
      open = src.find('{', open + 1);
    if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
    const size_t text_end = open == std::string::npos ? src.size() : open;
    const char kind = open == std::string::npos ? 0 : src[open + 1];
    const char lmod = open != std::string::npos && open + 2 < src.size() ? src[open + 2] : 0;

    // Text before the tag: leading strip/trim from the previous tag, trailing strip from this one.
    const std::string raw = src.substr(pos, text_end - pos);
    size_t lead = 0, tail = raw.size();
    if (strip_next) {
      while (lead < raw.size() && is_space(raw[lead])) ++lead;
    } else if (trim_next) {
      if (raw.compare(0, 2, "\r\n") == 0) lead = 2;
      else if (!raw.empty() && raw[0] == '\n') lead = 1;
    }
    if (kind != 0) {
      if (lmod == '-') {
        while (tail > 0 && is_space(raw[tail - 1])) --tail;
      } else if ((kind == '%' || kind == '#') && lmod != '+') {
        // lstrip_blocks: spaces and tabs from the start of the line up to the tag.
        size_t k = tail;
        while (k > 0 && (raw[k - 1] == ' ' || raw[k - 1] == '\t')) --k;
        if ((k > 0 && raw[k - 1] == '\n') || (k == 0 && at_start)) tail = k;
      }
    }
    if (tail < lead) tail = lead;
    if (tail > lead) {
      Segment seg;
      seg.kind = SegKind::Text;
      seg.text = raw.substr(lead, tail - lead);
      seg.line = line;
      out.push_back(std::move(seg));
    }
    line += count_lines(src, pos, text_end);
    if (kind == 0) break;

    const char* close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t body = open + 2 + ((lmod == '-' || lmod == '+') ? 1 : 0);
    size_t end = find_close(src, body, close, kind != '#');
    if (end == std::string::npos)
      error_at(line, std::string("unclosed ") + (kind == '{' ? "'{{'" : kind == '%' ? "'{%'" : "comment '{#'") + " (no matching '" +
                         close + "')");
    const char rmod = end > body ? src[end - 1] : 0;
    size_t body_end = (rmod == '-' || (rmod == '+' && kind != '{')) ? end - 1 : end;
    if (kind != '#') {
      Segment seg;
      seg.kind = kind == '{' ? SegKind::Expr : SegKind::Stmt;
      seg.line = line;
      seg.toks = tokenize_expr(src.substr(body, body_end - body), line);
      if (seg.toks.size() == 1) error_at(line, kind == '{' ? "empty expression '{{ }}'" : "empty statement '{% %}'");
      out.push_back(std::move(seg));
    }
    strip_next = rmod == '-';
    trim_next = kind != '{' && rmod != '+';
    at_start = false;
    line += count_lines(src, open, end + 2);
    pos = end + 2;
  }
  return out;
}

}  // namespace mf::jinja
