// The database a CLI command works on (the embedded one by default), how a failure maps to an
// exit status, and `migrate`.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "gen_durable/commands.hpp"  // tools/
#include "gen_durable/embedded/embedded.hpp"
#include "gen_durable/error.hpp"

namespace gen_durable::tools {

namespace {

constexpr const char* kEmbeddedDatabase = "gen_durable";

}  // namespace

int ExitStatusOf(const std::exception& e) {
  if (dynamic_cast<const UsageError*>(&e) != nullptr) return kExitUsage;
  // Both name an input the user gave: a bad flag value or a bad insert option.
  if (dynamic_cast<const ConfigError*>(&e) != nullptr) return kExitUsage;
  if (dynamic_cast<const InvalidArgument*>(&e) != nullptr) return kExitUsage;
  if (dynamic_cast<const RefusedError*>(&e) != nullptr) return kExitRefused;
  return kExitFailure;
}

Session::Session(const GlobalOptions& global) : schema_(global.schema) {
  conninfo_ = global.database;
  if (conninfo_.empty()) {
    if (const char* env = std::getenv("GEN_DURABLE_DATABASE_URL"); env != nullptr) conninfo_ = env;
  }
  if (conninfo_.empty()) {
    const std::string dir = detail::DefaultDataDir();
    fmt::print(stderr, "gen_durable: starting embedded database at {}\n", dir);
    cluster_ = detail::EmbeddedCluster::Start({.data_dir = dir});
    // The application's role, not the cluster's superuser: it owns this database and so the
    // schema it migrates, and can do nothing to the cluster.
    conninfo_ = cluster_->CreateAppDatabase(kEmbeddedDatabase);
  }
}

Session::~Session() = default;

Client& Session::client() {
  if (!client_) {
    ClientOptions options;
    options.database = conninfo_;
    options.schema = schema_;
    client_ = Client::Connect(options);
    client_->Migrate();
  }
  return *client_;
}

void Session::Close() {
  client_.reset();
  // Not cluster_->Stop(): that stops a server we merely attached to; the destructor stops it
  // only when this process started it.
  cluster_.reset();
}

int RunMigrate(const GlobalOptions& global) {
  Session session(global);
  const int version = session.client().SchemaVersion();
  if (global.json) {
    fmt::print("{}\n", Json{{"schema_version", version}, {"schema", global.schema}}.dump());
  } else {
    fmt::print("{}\n", version);
  }
  return kExitOk;
}

}  // namespace gen_durable::tools
