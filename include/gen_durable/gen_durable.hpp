// gen_durable: a durable state-machine and job engine for C++ on PostgreSQL.
//
// Include this one header to get the whole public API: define machines and jobs
// (machine.hpp), return outcomes (outcome.hpp), run an engine (engine.hpp), insert and read
// instances (client.hpp), observe it (telemetry.hpp). Errors are described in error.hpp.
#pragma once

#include "gen_durable/client.hpp"
#include "gen_durable/conninfo.hpp"
#include "gen_durable/context.hpp"
#include "gen_durable/engine.hpp"
#include "gen_durable/error.hpp"
#include "gen_durable/info.hpp"
#include "gen_durable/machine.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/outcome.hpp"
#include "gen_durable/telemetry.hpp"
