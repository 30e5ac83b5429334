// libpq helpers shared by the pg layer's connection.cpp and pipeline.cpp (not for other layers:
// it includes <libpq-fe.h>).
#pragma once

#include <libpq-fe.h>

#include <cstddef>
#include <vector>

#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail::pg {

// The protocol carries at most this many parameters; libpq refuses more.
inline constexpr std::size_t kMaxParams = 65535;

// True for a result that reports success (a command, rows, or an empty query).
bool Succeeded(const PGresult* res);

// Text-format parameter pointers for libpq; they point into `params` and die with it. Throws
// InvalidArgument past kMaxParams.
std::vector<const char*> ParamValues(const Params& params);

}  // namespace gen_durable::detail::pg
