// Reading a libpq connection string without connecting, and keeping its password out of sight.
//
// The redaction walks the string the way libpq's parser does (conninfo_parse and
// conninfo_uri_parse_options in fe-connect.c) but never fails: a string libpq rejects is still
// masked as far as its shape allows, because that is exactly the string an error message echoes.
#include "gen_durable/pg/conninfo.hpp"

#include <libpq-fe.h>

#include <cctype>
#include <string_view>

#include "gen_durable/conninfo.hpp"

namespace gen_durable::detail::pg {

std::vector<std::pair<std::string, std::string>> ConninfoKeywords(const std::string& conninfo) {
  std::vector<std::pair<std::string, std::string>> out;
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &error);
  if (parsed == nullptr) {
    PQfreemem(error);
    return out;
  }
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) out.emplace_back(o->keyword, o->val);
  }
  PQconninfoFree(parsed);
  return out;
}

namespace {

// A span of the string to mask: [begin, end), and the secret as libpq would read it.
struct Secret {
  std::size_t begin;
  std::size_t end;
  std::string value;
  // Written between single quotes (key=value form): the mask is quoted too, so that a keyword
  // written right after the closing quote stays a keyword of its own.
  bool quoted = false;
};

bool IsSecretKeyword(std::string_view key) { return key == "password" || key == "sslpassword"; }

bool IsUri(std::string_view s) {
  return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes leniently (a malformed escape is kept as it is).
std::string PercentDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::vector<Secret> UriSecrets(const std::string& s) {
  std::vector<Secret> out;
  std::size_t pos = s.find("://") + 3;
  // libpq takes user info up to the first '@' before any '/'.
  const std::size_t stop = s.find_first_of("@/", pos);
  if (stop != std::string::npos && s[stop] == '@') {
    const std::size_t colon = s.find(':', pos);
    if (colon != std::string::npos && colon < stop && colon + 1 < stop) {
      const std::string_view raw = std::string_view(s).substr(colon + 1, stop - colon - 1);
      out.push_back({colon + 1, stop, PercentDecode(raw), false});
    }
    pos = stop + 1;
  }
  const std::size_t query = s.find('?', pos);
  if (query == std::string::npos) return out;
  std::size_t p = query + 1;
  while (p <= s.size()) {
    std::size_t amp = s.find('&', p);
    if (amp == std::string::npos) amp = s.size();
    const std::size_t eq = s.find('=', p);
    if (eq != std::string::npos && eq < amp) {
      const std::string key = PercentDecode(std::string_view(s).substr(p, eq - p));
      if (IsSecretKeyword(key) && eq + 1 < amp) {
        const std::string_view raw = std::string_view(s).substr(eq + 1, amp - eq - 1);
        out.push_back({eq + 1, amp, PercentDecode(raw), false});
      }
    }
    p = amp + 1;
  }
  return out;
}

std::vector<Secret> KeyValueSecrets(const std::string& s) {
  std::vector<Secret> out;
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    while (i < n && space(s[i])) ++i;
    if (i >= n) break;
    const std::size_t key_begin = i;
    while (i < n && !space(s[i]) && s[i] != '=') ++i;
    const std::string key = s.substr(key_begin, i - key_begin);
    while (i < n && space(s[i])) ++i;
    if (i >= n || s[i] != '=') continue;  // libpq: missing "=" (the next word is a new key)
    ++i;
    while (i < n && space(s[i])) ++i;
    const std::size_t value_begin = i;
    std::string value;
    if (i < n && s[i] == '\'') {
      ++i;
      while (i < n && s[i] != '\'') {
        // As libpq: a backslash takes the next character literally; one at the end, nothing.
        if (s[i] == '\\') {
          if (++i < n) value += s[i++];
          continue;
        }
        value += s[i++];
      }
      if (i < n) ++i;  // the closing quote; an unterminated value runs to the end
    } else {
      while (i < n && !space(s[i])) {
        if (s[i] == '\\') {
          if (++i < n) value += s[i++];
          continue;
        }
        value += s[i++];
      }
      // `password=se cret`: libpq rejects "cret" (no "=" after it) and quotes it in its error.
      // It was meant as part of the password, so it is masked with it.
      while (IsSecretKeyword(key)) {
        std::size_t j = i;
        while (j < n && space(s[j])) ++j;
        std::size_t word_end = j;
        while (word_end < n && !space(s[word_end]) && s[word_end] != '=') ++word_end;
        std::size_t k = word_end;
        while (k < n && space(s[k])) ++k;
        if (word_end == j || (k < n && s[k] == '=')) break;
        value += " " + s.substr(j, word_end - j);
        i = word_end;
      }
    }
    if (IsSecretKeyword(key) && !value.empty()) {
      out.push_back({value_begin, i, value, s[value_begin] == '\''});
    }
  }
  return out;
}

std::vector<Secret> FindSecrets(const std::string& conninfo) {
  return IsUri(conninfo) ? UriSecrets(conninfo) : KeyValueSecrets(conninfo);
}

// Replaces every occurrence of `secret` in `text` until none is left: a replacement next to a
// partial match could otherwise form a new occurrence.
void MaskAll(std::string& text, const std::string& secret) {
  if (secret.empty()) return;
  // A secret made of mask characters only is already as hidden as the mask.
  if (std::string_view(kPasswordMask).find(secret) != std::string_view::npos) return;
  for (std::size_t guard = 0; guard <= text.size(); ++guard) {
    std::size_t at = text.find(secret);
    if (at == std::string::npos) return;
    while (at != std::string::npos) {
      text.replace(at, secret.size(), kPasswordMask);
      at = text.find(secret, at + sizeof(kPasswordMask) - 1);
    }
  }
}

}  // namespace

bool ConninfoHasPassword(const std::string& conninfo) { return !FindSecrets(conninfo).empty(); }

std::string RedactConninfo(const std::string& conninfo) {
  std::string out = conninfo;
  const std::vector<Secret> secrets = FindSecrets(conninfo);
  // Back to front, so earlier offsets stay valid.
  for (auto it = secrets.rbegin(); it != secrets.rend(); ++it) {
    out.replace(it->begin, it->end - it->begin,
                it->quoted ? "'" + std::string(kPasswordMask) + "'" : std::string(kPasswordMask));
  }
  return out;
}

std::string RedactSecrets(const std::string& text, const std::string& conninfo) {
  const std::vector<Secret> secrets = FindSecrets(conninfo);
  if (secrets.empty()) return text;
  std::string out = text;
  // The whole string, where a message quotes it, becomes its redacted form (which no longer
  // contains it: it has a secret).
  const std::string redacted = RedactConninfo(conninfo);
  for (std::size_t at = out.find(conninfo); at != std::string::npos;
       at = out.find(conninfo, at + redacted.size())) {
    out.replace(at, conninfo.size(), redacted);
  }
  // Quoted fragments that are pieces of a secret: "missing "=" after "cret"" for `password=se
  // cret`. Only fragments of the text, between double quotes, are looked at.
  std::size_t open = out.find('"');
  while (open != std::string::npos) {
    const std::size_t close = out.find('"', open + 1);
    if (close == std::string::npos) break;
    const std::string fragment = out.substr(open + 1, close - open - 1);
    bool part_of_secret = false;
    for (const Secret& s : secrets) {
      const std::string raw = conninfo.substr(s.begin, s.end - s.begin);
      if (!fragment.empty() && (s.value.find(fragment) != std::string::npos ||
                                raw.find(fragment) != std::string::npos)) {
        part_of_secret = true;
      }
    }
    if (part_of_secret && fragment != kPasswordMask) {
      out.replace(open + 1, fragment.size(), kPasswordMask);
      open = out.find('"', open + sizeof(kPasswordMask) + 1);
    } else {
      open = out.find('"', close + 1);
    }
  }
  // Each secret, decoded and as written (quoted, escaped), until none is left: masking one may
  // complete another next to it, but every replacement removes a character that is not part
  // of the mask, so this ends.
  for (bool changed = true; changed;) {
    const std::string before = out;
    for (const Secret& s : secrets) {
      MaskAll(out, s.value);
      MaskAll(out, conninfo.substr(s.begin, s.end - s.begin));
    }
    changed = out != before;
  }
  return out;
}

}  // namespace gen_durable::detail::pg

// The public API (gen_durable/conninfo.hpp) is this file's functions.
namespace gen_durable {

bool ConninfoHasPassword(const std::string& conninfo) {
  return detail::pg::ConninfoHasPassword(conninfo);
}

std::string RedactConninfo(const std::string& conninfo) {
  return detail::pg::RedactConninfo(conninfo);
}

std::string RedactSecrets(const std::string& text, const std::string& conninfo) {
  return detail::pg::RedactSecrets(text, conninfo);
}

}  // namespace gen_durable
