// Every session of the engine and the client is opened here, with the settings its correctness
// depends on pinned whatever the database or role defaults say, and with bounds on how long a
// statement or a silent network path may hold a thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gen_durable/options.hpp"
#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail {

// Limits of one kind of session (the engine's or a client's); 0 leaves the server's or the
// operating system's own.
struct SessionLimits {
  Millis statement_timeout{0};
  Millis network_timeout{0};
};

// The limits an engine's sessions run with: the options' values, or by default a statement
// timeout of lease_ttl (at least 5 s) and a network timeout of half of lease_ttl (at least 2 s).
SessionLimits EngineSessionLimits(const EngineOptions& options);
// A client's: the options' values, or by default no statement timeout (a caller's delete of
// many rows may rightly run long) and a network timeout of 30 s.
SessionLimits ClientSessionLimits(const ClientOptions& options);

// The libpq keywords set on every session: the server-side settings (in `options`, after any
// that `conninfo` or PGOPTIONS gives, so ours win) and, over TCP, the client-side keepalives and
// tcp_user_timeout (unless `conninfo` sets them itself).
std::vector<std::pair<std::string, std::string>> SessionParams(const std::string& conninfo,
                                                               const SessionLimits& limits);

// Opens a session: `conninfo` with SessionParams, then raises a synchronous_commit of `off`
// (set on the database or role) back to `on`. Other values (local, remote_write, remote_apply)
// all wait for at least the local WAL flush and are kept. Throws DatabaseError like
// pg::Connection::Open.
std::unique_ptr<pg::Connection> OpenSession(const std::string& conninfo,
                                            const std::string& application_name,
                                            const SessionLimits& limits);

// Tests: called with every session OpenSession opens, before it is handed out (nullptr: none).
void SetSessionOpenedHookForTesting(
    std::function<void(pg::Connection&, const std::string& application_name)> hook);

}  // namespace gen_durable::detail
