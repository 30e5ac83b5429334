// Fuzz target: the connection-string redaction that keeps passwords out of every message.
//
// The input is CONNINFO, optionally followed by a NUL byte and a MESSAGE. Properties: nothing
// throws or crashes on any bytes; a string without a secret comes back unchanged; when libpq
// accepts CONNINFO it accepts the redacted string too, with the same keywords and values except
// that each non-empty password or sslpassword reads kPasswordMask; RedactSecrets leaves no
// password libpq would use in MESSAGE wrapped around CONNINFO, nor in libpq's own error message
// about CONNINFO, nor CONNINFO itself.
#include <libpq-fe.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "gen_durable/pg/conninfo.hpp"
#include "input.hpp"

namespace gen_durable::fuzz {
namespace {

namespace pg = detail::pg;

struct Parsed {
  std::map<std::string, std::string> values;  // the keywords given explicitly
  std::string error;                          // libpq's message when it rejects the string
  bool ok = false;
};

Parsed Parse(const std::string& conninfo) {
  Parsed out;
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    if (error != nullptr) out.error = error;
    PQfreemem(error);
    return out;
  }
  out.ok = true;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) out.values[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  return out;
}

bool IsSecret(const std::string& key) { return key == "password" || key == "sslpassword"; }

// A secret the mask itself contains cannot be told apart from the mask.
bool Findable(const std::string& secret) {
  return !secret.empty() && std::string_view(pg::kPasswordMask).find(secret) == std::string::npos;
}

}  // namespace
}  // namespace gen_durable::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gen_durable::fuzz;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string conninfo(input.substr(0, nul));
  const std::string message(nul == std::string_view::npos ? std::string_view()
                                                          : input.substr(nul + 1));

  const std::string redacted = pg::RedactConninfo(conninfo);
  const bool has_password = pg::ConninfoHasPassword(conninfo);
  Check(has_password || redacted == conninfo, "a string without a secret is left as it is");

  const Parsed before = Parse(conninfo);
  if (before.ok) {
    const Parsed after = Parse(redacted);
    Check(after.ok, "the redacted form of an accepted string is accepted");
    for (const auto& [key, value] : before.values) {
      const auto it = after.values.find(key);
      Check(it != after.values.end(), "no keyword is lost by redaction");
      if (IsSecret(key) && !value.empty()) {
        Check(it->second == pg::kPasswordMask, "a password reads as the mask after redaction");
      } else {
        Check(it->second == value, "other keywords keep their values");
      }
    }
    Check(after.values.size() == before.values.size(), "no keyword is added by redaction");
    const std::string wrapped = message + conninfo + message + "\"" + conninfo + "\"";
    const std::string shown = pg::RedactSecrets(wrapped, conninfo);
    for (const auto& [key, value] : before.values) {
      if (IsSecret(key) && Findable(value)) {
        Check(shown.find(value) == std::string::npos, "RedactSecrets leaves no password");
      }
    }
  } else if (has_password) {
    const std::string shown = pg::RedactSecrets(before.error, conninfo);
    // (Unless the passwords are made of mask characters, when the redacted string still
    // contains the original: "password=**" in "password=********".)
    Check(redacted.find(conninfo) != std::string::npos || shown.find(conninfo) == std::string::npos,
          "libpq's error does not quote a string with a password in full");
  }
  return 0;
}
