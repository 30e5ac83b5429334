// Reading a libpq connection string without connecting, and keeping its password out of sight.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace gen_durable::detail::pg {

// The keywords `conninfo` (a "key=value" string or a URI) sets explicitly, with their values;
// libpq's defaults and environment variables are not applied. Empty when it cannot be parsed
// (the connection attempt then reports why).
std::vector<std::pair<std::string, std::string>> ConninfoKeywords(const std::string& conninfo);

// What replaces a password in anything shown.
inline constexpr char kPasswordMask[] = "********";

// Whether `conninfo` carries a secret: a `password` or `sslpassword` keyword (key=value form or
// URI query parameter) or a password in a URI's user info (`user:secret@`). Works on strings
// libpq cannot parse too, as far as their shape allows.
bool ConninfoHasPassword(const std::string& conninfo);

// `conninfo` with each such secret replaced by kPasswordMask, in the same form (a URI stays a
// URI), for printing. A string libpq accepts still parses to the same keywords after redaction,
// the secrets aside.
std::string RedactConninfo(const std::string& conninfo);

// `text` (a message about `conninfo`, e.g. libpq's error, which may quote all or part of it)
// with every secret of `conninfo` masked: the whole string where it appears, each secret, and
// each double-quoted fragment of the text that is part of a secret (libpq quotes the token it
// stumbled on, which may be a piece of a password).
std::string RedactSecrets(const std::string& text, const std::string& conninfo);

}  // namespace gen_durable::detail::pg
