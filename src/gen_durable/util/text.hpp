// Text helpers every layer may use.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

namespace gen_durable::detail {

// `text` on one line: libpq messages and SQL span several lines, while a log line, an error
// label and the CLI's contract (one line per failure) do not. Runs of blanks become one
// space; leading and trailing ones go.
inline std::string OneLine(std::string_view text) {
  std::string out;
  bool pending_space = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

}  // namespace gen_durable::detail
