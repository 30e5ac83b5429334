// The embedded cluster's life: finding the server programs, initdb, writing the settings it
// manages, starting the server or attaching to a running one, waiting until it accepts
// connections, and stopping it.
#include <libpq-fe.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "gen_durable/embedded/data_dir.hpp"
#include "gen_durable/embedded/embedded.hpp"
#include "gen_durable/embedded/process.hpp"
#include "gen_durable/embedded/server_files.hpp"
#include "gen_durable/error.hpp"

namespace gen_durable::detail {

using embedded::CheckParent;
using embedded::CheckTraversable;
using embedded::CommandResult;
using embedded::CreateParents;
using embedded::EnsureDataDir;
using embedded::ExpectedOwner;
using embedded::FindBinDir;
using embedded::IsRoot;
using embedded::kServerUser;
using embedded::ReadListenAddress;
using embedded::RunCommand;
using embedded::RunuserPath;
using embedded::ServerLogPath;
using embedded::ServerLogTail;
using embedded::StartLock;
using embedded::TailOf;
using embedded::TrimRight;

namespace {

namespace fs = std::filesystem;

// How long pg_ctl waits for start/stop, and how long we wait for a server to accept connections.
constexpr int kPgCtlTimeoutSeconds = 60;
constexpr auto kReadyTimeout = std::chrono::seconds(60);

// Single-quotes `value` for postgresql.conf.
std::string ConfQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += c;  // doubled
    out += c;
  }
  return out + "'";
}

// Quotes a libpq conninfo value only when it needs it, keeping the common form readable.
std::string ConnValue(const std::string& value) {
  bool plain = !value.empty() && value.find_first_of(" '\\\t\n") == std::string::npos;
  if (plain) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// A libpq connection string for `dbname` as `user` over the cluster's Unix socket.
std::string ConnInfoAs(const std::string& socket_dir, int port, const std::string& user,
                       const std::string& dbname) {
  return "host=" + ConnValue(socket_dir) + " port=" + std::to_string(port) + " user=" + user +
         " dbname=" + ConnValue(dbname);
}

}  // namespace

std::unique_ptr<EmbeddedCluster> EmbeddedCluster::Start(const EmbeddedOptions& options) {
  std::unique_ptr<EmbeddedCluster> cluster(new EmbeddedCluster(options));
  cluster->StartOrAttach();
  return cluster;
}

EmbeddedCluster::EmbeddedCluster(EmbeddedOptions options) : options_(std::move(options)) {
  if (options_.data_dir.empty()) throw ConfigError("embedded postgres: data_dir is empty");
  if (options_.port <= 0 || options_.port > 65535) {
    throw ConfigError("embedded postgres: invalid port " + std::to_string(options_.port));
  }
  // pg_ctl runs with "/" as working directory, and the path names the cluster for attaching.
  fs::path dir = fs::absolute(options_.data_dir).lexically_normal();
  std::string normalized = dir.string();
  while (normalized.size() > 1 && normalized.back() == '/') normalized.pop_back();
  options_.data_dir = normalized;
  socket_dir_ = options_.data_dir;
  port_ = options_.port;
  owner_pid_ = getpid();
  // The socket path must fit in sockaddr_un.sun_path (Postgres reports it obscurely otherwise).
  std::string socket_path = socket_dir_ + "/.s.PGSQL." + std::to_string(port_);
  if (socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    throw ConfigError("embedded postgres: the data directory path is too long for a Unix socket (" +
                      socket_path + "); choose a shorter one, e.g. with GEN_DURABLE_HOME");
  }
  bin_dir_ = FindBinDir();
}

// Client sessions other than the asking one: another process (a worker that attached after we
// started the server) still needs it. -1 when the server cannot be asked.
int EmbeddedCluster::OtherSessions() const {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(ConnInfo("postgres").c_str()),
                                                    &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) return -1;
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
      PQexec(conn.get(),
             "SELECT count(*) FROM pg_stat_activity "
             "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"),
      &PQclear);
  if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) return -1;
  return std::atoi(PQgetvalue(res.get(), 0, 0));
}

EmbeddedCluster::~EmbeddedCluster() {
  if (options_.stop_on_exit && started_by_us_ && running_ && getpid() == owner_pid_) {
    // Leave the server up while another process uses it; the next starter attaches to it.
    // A backend whose client has just disconnected (this process's own connections, or a
    // short command that just finished) lingers for a moment: give such sessions a second to
    // go before deciding that someone still uses the server.
    int others = OtherSessions();
    for (int i = 0; others > 0 && i < 20; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      others = OtherSessions();
    }
    if (others > 0) return;
    try {
      Stop();
    } catch (...) {
      // A destructor must not throw; the server keeps running and the next Start attaches.
    }
  }
}

EmbeddedCluster::ToolResult EmbeddedCluster::RunServerTool(const std::string& tool,
                                                           const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  if (IsRoot()) {
    argv = {RunuserPath(), "-u", kServerUser, "--"};
  }
  argv.push_back((fs::path(bin_dir_) / tool).string());
  argv.insert(argv.end(), args.begin(), args.end());
  // pg_ctl start leaves the postmaster running: give it its own session.
  bool detach = tool == "pg_ctl" && !args.empty() && args.back() == "start";
  CommandResult r = RunCommand(argv, detach);
  return {r.exit_code, std::move(r.output)};
}

bool EmbeddedCluster::ServerRunning() {
  // Exit status 0: running; 3: not running; 4: no cluster there.
  return RunServerTool("pg_ctl", {"status", "-D", options_.data_dir}).exit_code == 0;
}

void EmbeddedCluster::StartOrAttach() {
  const fs::path dir(options_.data_dir);
  const FileOwner owner = ExpectedOwner();

  CreateParents(dir);
  CheckParent(dir);
  if (IsRoot()) CheckTraversable(dir, owner);
  StartLock lock(dir.parent_path());
  EnsureDataDir(dir, owner);

  std::error_code ec;
  if (!fs::exists(dir / "PG_VERSION", ec)) InitDb();

  started_by_us_ = false;
  if (!ServerRunning()) {
    WriteSettings();
    ToolResult start =
        RunServerTool("pg_ctl", {"-D", options_.data_dir, "-l", ServerLogPath(options_.data_dir),
                                 "-w", "-t", std::to_string(kPgCtlTimeoutSeconds), "start"});
    // Another process may have started the same cluster between our status check and start:
    // then we attach to it.
    if (start.exit_code != 0 && !ServerRunning()) {
      throw Error("embedded postgres: failed to start the server in " + options_.data_dir +
                  " (pg_ctl exit " + std::to_string(start.exit_code) +
                  "): " + TrimRight(start.output) + "\n" + ServerLogTail(options_.data_dir));
    }
    started_by_us_ = start.exit_code == 0;
  }
  Attach();
}

void EmbeddedCluster::InitDb() {
  const fs::path dir(options_.data_dir);
  // StartOrAttach made sure it is a directory of the right owner and mode.
  std::error_code ec;
  if (!fs::is_empty(dir, ec)) {
    throw Error("embedded postgres: " + dir.string() +
                " is not empty but holds no PostgreSQL cluster (no PG_VERSION); empty it or "
                "choose another data directory");
  }

  std::vector<std::string> args = {
      "-D", options_.data_dir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-instructions"};
  if (options_.fast_unsafe) args.push_back("--no-sync");
  // C.UTF-8 is present on Debian and most modern glibc systems; plain C works everywhere.
  ToolResult result{0, ""};
  std::string first_output;
  for (const char* locale : {"--locale=C.UTF-8", "--locale=C"}) {
    std::vector<std::string> attempt = args;
    attempt.push_back(locale);
    result = RunServerTool("initdb", attempt);
    if (result.exit_code == 0) break;
    if (first_output.empty()) first_output = result.output;
    // initdb removes what it created on failure; anything left would make the retry fail.
    if (fs::exists(dir / "PG_VERSION", ec)) break;
  }
  if (result.exit_code != 0) {
    throw Error(
        "embedded postgres: initdb failed for " + options_.data_dir + " (exit " +
        std::to_string(result.exit_code) + "): " + TailOf(TrimRight(first_output), 2000) +
        (first_output == result.output ? "" : "\n" + TailOf(TrimRight(result.output), 2000)));
  }

  // Settings we manage live in their own file, rewritten at each start, so a later run with
  // other options (fast_unsafe, port) takes effect without editing postgresql.conf again.
  AppendToDataFile(options_.data_dir, "postgresql.conf",
                   "\n# Added by gen_durable: the settings it manages are in gen_durable.conf.\n"
                   "include_if_exists = 'gen_durable.conf'\n",
                   ExpectedOwner().uid);
}

void EmbeddedCluster::WriteSettings() {
  std::optional<FileOwner> owner;
  if (IsRoot()) owner = ExpectedOwner();
  const char* durability = options_.fast_unsafe ? "off" : "on";
  std::ostringstream conf;
  conf << "# Written by gen_durable at each start of the embedded cluster; edits are lost.\n"
       << "listen_addresses = ''\n"
       << "unix_socket_directories = " << ConfQuote(socket_dir_) << "\n"
       << "port = " << options_.port << "\n"
       << "max_connections = 200\n"
       << "shared_buffers = 128MB\n"
       << "fsync = " << durability << "\n"
       << "synchronous_commit = " << durability << "\n"
       << "full_page_writes = " << durability << "\n";
  ReplaceDataFile(options_.data_dir, "gen_durable.conf", conf.str(), owner);
}

void EmbeddedCluster::Attach() {
  running_ = true;
  const auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
  while (true) {
    ReadListenAddress(options_.data_dir, port_, socket_dir_);
    PGPing ping = PQping(ConnInfo("postgres").c_str());
    if (ping == PQPING_OK) return;
    if (ping == PQPING_NO_ATTEMPT) {
      throw Error("embedded postgres: invalid connection parameters: " + ConnInfo("postgres"));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error("embedded postgres: the server in " + options_.data_dir +
                  " runs but does not accept connections at " + ConnInfo("postgres") + "\n" +
                  ServerLogTail(options_.data_dir));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string EmbeddedCluster::ConnInfo(const std::string& dbname) const {
  return ConnInfoAs(socket_dir_, port_, "postgres", dbname);
}

std::string EmbeddedCluster::AppConnInfo(const std::string& dbname) const {
  return ConnInfoAs(socket_dir_, port_, kAppRole, dbname);
}

void EmbeddedCluster::Stop(StopMode mode) {
  if (!running_) return;
  const char* mode_name = mode == StopMode::kImmediate ? "immediate" : "fast";
  ToolResult stop = RunServerTool("pg_ctl", {"stop", "-D", options_.data_dir, "-m", mode_name, "-w",
                                             "-t", std::to_string(kPgCtlTimeoutSeconds)});
  if (stop.exit_code != 0 && ServerRunning()) {
    throw Error("embedded postgres: failed to stop the server in " + options_.data_dir + ": " +
                TrimRight(stop.output));
  }
  running_ = false;
}

void EmbeddedCluster::Restart() {
  // Also correct when the server was stopped behind our back, or is still running.
  if (ServerRunning()) {
    running_ = true;
    Stop();
  }
  running_ = false;
  socket_dir_ = options_.data_dir;
  port_ = options_.port;
  StartOrAttach();
}

}  // namespace gen_durable::detail
