// The embedded default database: a private PostgreSQL cluster created and run with the system's
// initdb / pg_ctl, listening only on a Unix socket inside its own directory.
//
// Used by the CLI when no database URL is given, and by the test suite (with fsync off).
// When the process runs as root the server runs as the `postgres` OS user (initdb refuses root),
// through `runuser -u postgres --`, and the data directory is owned by that user.
#pragma once

#include <memory>
#include <string>

namespace gen_durable::detail {

struct EmbeddedOptions {
  // Where the cluster lives; created by initdb when it holds no cluster yet.
  std::string data_dir;
  // TCP is off; this number only names the socket file (.s.PGSQL.<port>).
  int port = 5432;
  // Turn durability off (fsync, synchronous_commit, full_page_writes): tests only.
  bool fast_unsafe = false;
  // Stop the server when this object is destroyed, if this object started it.
  bool stop_on_exit = true;
};

class EmbeddedCluster {
 public:
  // Creates the cluster if needed and starts it, or attaches to it when it is already running
  // (then it is not stopped on exit). Throws gen_durable::Error with a clear reason when the
  // Postgres binaries cannot be found or the server fails to start (the server log's tail is
  // included in the message).
  static std::unique_ptr<EmbeddedCluster> Start(const EmbeddedOptions& options);

  ~EmbeddedCluster();
  EmbeddedCluster(const EmbeddedCluster&) = delete;
  EmbeddedCluster& operator=(const EmbeddedCluster&) = delete;

  // A libpq connection string for `dbname` on this cluster (user `postgres`).
  std::string ConnInfo(const std::string& dbname = "postgres") const;
  // Creates database `name` if it does not exist.
  void CreateDatabase(const std::string& name);
  // Stops the server (fast mode) and waits for it. Idempotent.
  void Stop();
  // Starts a stopped server again (for restart tests).
  void Restart();
  const std::string& data_dir() const { return options_.data_dir; }
  // Directory holding the Unix socket.
  const std::string& socket_dir() const { return socket_dir_; }

 private:
  explicit EmbeddedCluster(EmbeddedOptions options);
  EmbeddedOptions options_;
  std::string socket_dir_;
  std::string bin_dir_;
  bool started_by_us_ = false;
  bool running_ = false;
};

// The default data directory: $GEN_DURABLE_HOME/pgdata when set; as root
// /var/lib/gen_durable/pgdata; otherwise $XDG_DATA_HOME (or ~/.local/share)/gen_durable/pgdata.
std::string DefaultDataDir();

}  // namespace gen_durable::detail
