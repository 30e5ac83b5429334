// Reading a libpq connection string without connecting.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace gen_durable::detail::pg {

// The keywords `conninfo` (a "key=value" string or a URI) sets explicitly, with their values;
// libpq's defaults and environment variables are not applied. Empty when it cannot be parsed
// (the connection attempt then reports why).
std::vector<std::pair<std::string, std::string>> ConninfoKeywords(const std::string& conninfo);

}  // namespace gen_durable::detail::pg
