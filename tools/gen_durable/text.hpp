// Text helpers the programs share (the CLI and the benchmark driver).
#pragma once

#include <string>

namespace gen_durable::tools {

// `text` on one line: libpq messages span several lines, and the CLI's contract is one line
// per failure. Runs of blanks (spaces, tabs, line ends) become one space; leading and trailing
// ones go.
inline std::string OneLine(const std::string& text) {
  std::string out;
  bool blank = false;
  for (char c : text) {
    const bool space = c == '\n' || c == '\r' || c == '\t' || c == ' ';
    if (space) {
      blank = !out.empty();
      continue;
    }
    if (blank) out += ' ';
    blank = false;
    out += c;
  }
  return out;
}

}  // namespace gen_durable::tools
