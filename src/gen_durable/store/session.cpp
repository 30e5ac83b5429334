// Session setup: pinned settings, statement and network bounds.
#include "gen_durable/store/session.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "gen_durable/pg/conninfo.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable::detail {

namespace {

Mutex g_hook_mu;
std::function<void(pg::Connection&, const std::string&)>& Hook() GD_REQUIRES(g_hook_mu) {
  static auto* hook = new std::function<void(pg::Connection&, const std::string&)>();
  return *hook;
}

long long Seconds(Millis ms) { return std::max<long long>(1, ms.count() / 1000); }

}  // namespace

SessionLimits EngineSessionLimits(const EngineOptions& options) {
  SessionLimits limits;
  limits.statement_timeout =
      options.statement_timeout.value_or(std::max(options.lease_ttl, Millis{5'000}));
  limits.network_timeout =
      options.network_timeout.value_or(std::max(options.lease_ttl / 2, Millis{2'000}));
  return limits;
}

SessionLimits ClientSessionLimits(const ClientOptions& options) {
  SessionLimits limits;
  limits.statement_timeout = options.statement_timeout.value_or(Millis{0});
  limits.network_timeout = options.network_timeout.value_or(Millis{30'000});
  return limits;
}

std::vector<std::pair<std::string, std::string>> SessionParams(const std::string& conninfo,
                                                               const SessionLimits& limits) {
  const auto given = pg::ConninfoKeywords(conninfo);
  auto has = [&](std::string_view key) {
    return std::any_of(given.begin(), given.end(), [&](const auto& kv) { return kv.first == key; });
  };
  std::string options;
  for (const auto& [key, value] : given) {
    if (key == "options") options = value;
  }
  if (!has("options")) {
    // An explicit `options` keyword replaces PGOPTIONS, so carry it over.
    if (const char* env = std::getenv("PGOPTIONS"); env != nullptr) options = env;
  }
  auto set = [&](std::string_view name, const std::string& value) {
    if (!options.empty()) options += ' ';
    options += fmt::format("-c {}={}", name, value);
  };
  // Read committed: the park re-check (gd_wake_parked) and gd_signal rely on each statement
  // seeing what committed before it; under repeatable read a signal that commits while a park
  // waits for its row lock is missed. timestamptz text is read as UTC.
  set("default_transaction_isolation", "read\\ committed");
  // Every statement names the schema's objects in full, so nothing else needs to be on the path;
  // pinned like the functions' (migration 6), an operator or function another role creates in
  // public (or in any schema of the role's default path) can neither replace a built-in one in
  // the engine's statements nor run with the engine's rights.
  set("search_path", "pg_catalog,pg_temp");
  set("TimeZone", "UTC");
  set("statement_timeout", std::to_string(limits.statement_timeout.count()));
  std::vector<std::pair<std::string, std::string>> params;
  if (limits.network_timeout.count() > 0) {
    // The server drops a silent client too, freeing its locks and connection slot. Over a Unix
    // socket the server ignores these.
    const Millis t = limits.network_timeout;
    set("tcp_keepalives_idle", std::to_string(Seconds(t / 3)));
    set("tcp_keepalives_interval", std::to_string(Seconds(t / 9)));
    set("tcp_keepalives_count", "3");
    set("tcp_user_timeout", std::to_string(t.count()));
    // Our side: an idle connection (the listener, a heartbeat between beats) probes after
    // t/3 and gives up after 3 unanswered probes (t/3 more); one with unacknowledged data in
    // flight (a statement sent to a vanished server) gives up after t.
    auto client = [&](const char* key, std::string value) {
      if (!has(key)) params.emplace_back(key, std::move(value));
    };
    client("keepalives", "1");
    client("keepalives_idle", std::to_string(Seconds(t / 3)));
    client("keepalives_interval", std::to_string(Seconds(t / 9)));
    client("keepalives_count", "3");
    client("tcp_user_timeout", std::to_string(t.count()));
  }
  params.emplace_back("options", options);
  return params;
}

std::unique_ptr<pg::Connection> OpenSession(const std::string& conninfo,
                                            const std::string& application_name,
                                            const SessionLimits& limits) {
  auto conn = pg::Connection::Open(conninfo, application_name, SessionParams(conninfo, limits));
  // Outcomes must survive a server crash once committed: a database or role default of `off`
  // is raised to `on` for the session. (The claim's own asynchronous commit is set per
  // transaction: see gd_claim_async_commit.) Not a startup option, so that a stronger level
  // set by the operator (remote_apply for readable standbys) is kept.
  conn->Exec(
      "SELECT set_config('synchronous_commit', 'on', false) "
      "WHERE current_setting('synchronous_commit') = 'off'");
  std::function<void(pg::Connection&, const std::string&)> hook;
  {
    MutexLock lock(g_hook_mu);
    hook = Hook();
  }
  if (hook) hook(*conn, application_name);
  return conn;
}

void SetSessionOpenedHookForTesting(
    std::function<void(pg::Connection&, const std::string& application_name)> hook) {
  MutexLock lock(g_hook_mu);
  Hook() = std::move(hook);
}

}  // namespace gen_durable::detail
