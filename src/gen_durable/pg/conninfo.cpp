// Reading a libpq connection string without connecting.
#include "gen_durable/pg/conninfo.hpp"

#include <libpq-fe.h>

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

}  // namespace gen_durable::detail::pg
