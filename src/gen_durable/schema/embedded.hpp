// The embedded default database: a private PostgreSQL cluster created and run with the system's
// initdb / pg_ctl, listening only on a Unix socket inside its own directory.
//
// Used by the CLI when no database URL is given, and by the test suite (with fsync off).
// When the process runs as root the server runs as the `postgres` OS user (initdb refuses root),
// through `runuser -u postgres --`, and the data directory is owned by that user.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace gen_durable::detail {

struct EmbeddedOptions {
  // Where the cluster lives; created by initdb when it holds no cluster yet.
  std::string data_dir;
  // TCP is off; this number only names the socket file (.s.PGSQL.<port>).
  int port = 5432;
  // Turn durability off (fsync, synchronous_commit, full_page_writes): tests only.
  bool fast_unsafe = false;
  // Stop the server when this object is destroyed, if this object started it and no other
  // client is connected (a process that attached later keeps it running).
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
  // How Stop shuts the server down: kFast rolls back sessions and checkpoints; kImmediate quits
  // at once, like a crash, and the next start runs crash recovery from the WAL.
  enum class StopMode { kFast, kImmediate };
  // Stops the server and waits for it, even when this object only attached to a running server
  // and other clients are connected. Idempotent.
  void Stop(StopMode mode = StopMode::kFast);
  // Starts a stopped server again (for restart tests).
  void Restart();
  const std::string& data_dir() const { return options_.data_dir; }
  // Directory holding the Unix socket.
  const std::string& socket_dir() const { return socket_dir_; }

 private:
  int OtherSessions() const;
  explicit EmbeddedCluster(EmbeddedOptions options);
  // Runs initdb when needed, then starts the server or attaches to the running one.
  void StartOrAttach();
  void InitDb();
  // Writes the settings this class manages to gen_durable.conf (included by postgresql.conf).
  void WriteSettings();
  // True iff `pg_ctl status` reports a server running on data_dir.
  bool ServerRunning();
  // Adopts a running server: learns its socket and port and waits until it accepts connections.
  void Attach();
  struct ToolResult {
    int exit_code;
    std::string output;  // stdout and stderr
  };
  // Runs a Postgres binary from bin_dir_, as the `postgres` OS user when we are root.
  ToolResult RunServerTool(const std::string& tool, const std::vector<std::string>& args);
  std::string LogTail() const;

  EmbeddedOptions options_;
  std::string socket_dir_;
  std::string bin_dir_;
  int port_ = 0;  // the running server's port (from postmaster.pid), else options_.port
  bool started_by_us_ = false;
  bool running_ = false;
  int owner_pid_ = 0;  // the process that made this object; a forked child never stops the server
};

// The default data directory: $GEN_DURABLE_HOME/pgdata when set; as root
// /var/lib/gen_durable/pgdata; otherwise $XDG_DATA_HOME (or ~/.local/share)/gen_durable/pgdata.
std::string DefaultDataDir();

}  // namespace gen_durable::detail
