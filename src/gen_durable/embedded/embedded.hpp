// The embedded default database: a private PostgreSQL cluster created and run with the system's
// initdb / pg_ctl, listening only on a Unix socket inside its own directory.
//
// Used by the CLI when no database URL is given, and by the test suite (with fsync off). A
// library of its own (gen_durable::embedded), neither installed nor exported with gen_durable.
// When the process runs as root the server runs as the `postgres` OS user (initdb refuses root),
// through `runuser -u postgres --`, and the data directory is owned by that user.
//
// That account controls the data directory, so nothing this process does there as root may be
// redirected by a link planted in it: every file is opened relative to the directory with
// O_NOFOLLOW, written through a fresh O_EXCL temporary file renamed into place, and the directory
// itself must be owned by the server's account with mode 0700 or it is refused.
//
// The superuser `postgres` is for administering the cluster only. Applications get a connection
// string for the login role kAppRole (no superuser, no CREATEROLE/CREATEDB), which owns their
// database and so the schemas they migrate (CreateAppDatabase).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <optional>
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

  // The login role applications connect as: not a superuser, owner of its databases.
  static constexpr char kAppRole[] = "gen_durable_app";

  // A libpq connection string for `dbname` on this cluster as the superuser `postgres`: for
  // administering the cluster (and for tests), never handed to an application.
  std::string ConnInfo(const std::string& dbname = "postgres") const;
  // The same, as the application role kAppRole.
  std::string AppConnInfo(const std::string& dbname) const;
  // Creates database `name` (owned by `postgres`) if it does not exist.
  void CreateDatabase(const std::string& name);
  // Creates the role kAppRole and database `name` owned by it, if missing, and returns
  // AppConnInfo(name). A database left by an older version, owned by the superuser with its
  // schemas, is handed over to kAppRole (the database, and every schema and object in it that a
  // superuser owns, outside the system schemas and extensions).
  std::string CreateAppDatabase(const std::string& name);
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
// Throws ConfigError when none of these can be told (no HOME, no passwd entry): never falls
// back to a shared directory such as /tmp.
std::string DefaultDataDir();

// File access inside a directory another account may control (the data directory, written as
// root). Each opens `dir` once and works relative to that descriptor, so a directory swapped
// in between cannot redirect it; the writers also check that `dir` belongs to the file's owner
// and that no one else may write to it.
struct FileOwner {
  uid_t uid;
  gid_t gid;
};
// Replaces dir/name with `content` (mode 0600): written to a new temporary file created with
// O_EXCL|O_NOFOLLOW, given to `owner` (when set; else left to this process's user), then renamed
// over `name`. A link at `name` or at any temporary name is replaced or skipped, never followed.
void ReplaceDataFile(const std::string& dir, const std::string& name, const std::string& content,
                     const std::optional<FileOwner>& owner);
// Appends `content` to the existing regular file dir/name, which must be owned by `owner_uid`
// and have a single link: a symbolic link or a hard link to another file is refused (Error).
void AppendToDataFile(const std::string& dir, const std::string& name, const std::string& content,
                      uid_t owner_uid);
// The last `max_bytes` of the regular file dir/name; "" when it is missing, empty, or not a
// regular file (a symbolic link, a FIFO), so an error message never shows another file.
std::string ReadDataFileTail(const std::string& dir, const std::string& name,
                             std::size_t max_bytes);

}  // namespace gen_durable::detail
