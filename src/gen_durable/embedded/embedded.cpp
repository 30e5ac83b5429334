// The embedded default database: creates, starts, attaches to and stops a private Postgres cluster.
//
// Child processes (pg_config, initdb, pg_ctl, runuser) are run with fork/exec and an argv vector,
// never through a shell, so paths with spaces or quotes cannot inject commands.
#include "gen_durable/embedded/embedded.hpp"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "gen_durable/error.hpp"

namespace gen_durable::detail {
namespace {

namespace fs = std::filesystem;

// The OS user that owns the cluster when this process runs as root (initdb refuses root).
constexpr char kServerUser[] = "postgres";
// How long pg_ctl waits for start/stop, and how long we wait for a server to accept connections.
constexpr int kPgCtlTimeoutSeconds = 60;
constexpr auto kReadyTimeout = std::chrono::seconds(60);
// Child processes that never finish (a hung initdb) must not hang the caller forever.
constexpr auto kCommandTimeout = std::chrono::seconds(180);
// Bound the captured output of a child; error messages only need the end of it.
constexpr std::size_t kMaxCapturedOutput = 64 * 1024;

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed; 127 when exec failed
  std::string output;  // stdout and stderr, interleaved
};

bool IsRoot() { return geteuid() == 0; }

std::string TrimRight(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Keeps at most the last `max_chars` characters, starting at a line boundary when possible.
std::string TailOf(const std::string& text, std::size_t max_chars) {
  if (text.size() <= max_chars) return text;
  std::size_t start = text.size() - max_chars;
  std::size_t nl = text.find('\n', start);
  if (nl != std::string::npos && nl + 1 < text.size()) start = nl + 1;
  return "..." + text.substr(start);
}

bool IsExecutable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && access(p.c_str(), X_OK) == 0;
}

// Returns the absolute path of `program` found on $PATH, or "" when absent.
std::string FindInPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::istringstream in(dirs);
  std::string dir;
  while (std::getline(in, dir, ':')) {
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / program;
    if (IsExecutable(candidate)) return candidate.string();
  }
  return "";
}

// Runs argv[0] (an absolute path) with arguments, stdin from /dev/null, capturing stdout and
// stderr. With `new_session` the child gets its own session, so a server it leaves running does
// not receive the terminal's Ctrl-C meant for this process.
CommandResult RunCommand(const std::vector<std::string>& argv, bool new_session = false) {
  CommandResult result;
  // Everything the child needs is prepared before fork: only async-signal-safe calls after it.
  std::vector<char*> c_argv;
  c_argv.reserve(argv.size() + 1);
  for (const std::string& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    throw Error("embedded postgres: pipe() failed: " + std::string(std::strerror(errno)));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    throw Error("embedded postgres: fork() failed: " + std::string(std::strerror(err)));
  }
  if (pid == 0) {
    if (new_session) setsid();
    // Threads of the parent may block or ignore signals (SIGPIPE, SIGTERM for sigwait); the
    // tools and the server they spawn expect defaults.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    // Inherited descriptors (libpq sockets, a test runner's pipes) must not leak into a server
    // that outlives us: a leaked pipe end keeps the reader of our output waiting for EOF.
    if (close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 4096; ++fd) close(fd);
    }
    // All paths are absolute; the server user may not be able to enter our working directory.
    if (chdir("/") != 0) _exit(126);
    execv(c_argv[0], c_argv.data());
    static const char kMsg[] = "exec failed: ";
    (void)!write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    (void)!write(STDERR_FILENO, c_argv[0], std::strlen(c_argv[0]));
    _exit(127);
  }
  close(fds[1]);

  // Read until EOF, but also stop once the child has exited: a grandchild (the postmaster)
  // that kept the pipe open must not make us wait for it.
  const auto deadline = std::chrono::steady_clock::now() + kCommandTimeout;
  bool exited = false;
  int status = 0;
  char buf[4096];
  while (true) {
    pollfd pfd{fds[0], POLLIN, 0};
    int ready = poll(&pfd, 1, exited ? 0 : 100);
    if (ready > 0) {
      ssize_t n = read(fds[0], buf, sizeof(buf));
      if (n > 0) {
        if (result.output.size() < kMaxCapturedOutput) result.output.append(buf, n);
        continue;
      }
      if (n == 0) break;  // EOF
      if (errno == EINTR || errno == EAGAIN) continue;
      break;
    }
    if (ready < 0 && errno != EINTR) break;
    if (exited) break;  // drained what was left
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      exited = true;
    } else if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      result.output += "\n(killed after timing out)";
      break;
    }
  }
  close(fds[0]);
  if (!exited) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

struct ServerAccount {
  uid_t uid;
  gid_t gid;
};

// The `postgres` OS account, required only when we are root.
ServerAccount LookUpServerAccount() {
  passwd* pw = getpwnam(kServerUser);
  if (pw == nullptr) {
    throw Error(
        "embedded postgres: running as root, but the `postgres` OS user does not exist "
        "(initdb refuses to run as root); install the `postgresql` package, which creates it, "
        "or run as a non-root user");
  }
  return {pw->pw_uid, pw->pw_gid};
}

// Who owns the data directory and the files written into it: the server's account when root,
// else this process's user.
FileOwner ExpectedOwner() {
  if (IsRoot()) {
    const ServerAccount a = LookUpServerAccount();
    return {a.uid, a.gid};
  }
  return {geteuid(), getegid()};
}

std::string RunuserPath() {
  for (const char* p : {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"}) {
    if (IsExecutable(p)) return p;
  }
  std::string found = FindInPath("runuser");
  if (found.empty()) {
    throw Error(
        "embedded postgres: running as root needs `runuser` (package util-linux) to run the "
        "server as the `postgres` user");
  }
  return found;
}

bool HasServerBinaries(const fs::path& dir) {
  return IsExecutable(dir / "initdb") && IsExecutable(dir / "pg_ctl") &&
         IsExecutable(dir / "postgres");
}

// Orders Debian's version directories numerically ("9.6" < "15").
double VersionNumber(const std::string& name) {
  char* end = nullptr;
  double v = std::strtod(name.c_str(), &end);
  return end == name.c_str() ? -1 : v;
}

// Finds the directory holding initdb, pg_ctl and postgres.
std::string FindBinDir() {
  // Debian's pg_config comes with libpq-dev and may name a version whose server is absent, so
  // its answer is checked like any other candidate.
  std::string pg_config = FindInPath("pg_config");
  if (!pg_config.empty()) {
    CommandResult r = RunCommand({pg_config, "--bindir"});
    std::string dir = TrimRight(r.output);
    if (r.exit_code == 0 && !dir.empty() && HasServerBinaries(dir)) return dir;
  }
  std::error_code ec;
  std::string best;
  double best_version = -1;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    fs::path bin = entry.path() / "bin";
    double version = VersionNumber(entry.path().filename().string());
    if (version > best_version && HasServerBinaries(bin)) {
      best = bin.string();
      best_version = version;
    }
  }
  if (!best.empty()) return best;
  // Resolve symlinks: pg_ctl finds `postgres` next to its real location.
  std::string initdb = FindInPath("initdb");
  if (!initdb.empty()) {
    fs::path dir = fs::canonical(initdb, ec).parent_path();
    if (!ec && HasServerBinaries(dir)) return dir.string();
  }
  throw Error(
      "embedded postgres: the PostgreSQL server programs (initdb, pg_ctl, postgres) were not "
      "found via pg_config, in /usr/lib/postgresql/*/bin, or on PATH; install the `postgresql` "
      "package (e.g. `apt-get install postgresql`) or pass --database URL");
}

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

// Closes a descriptor on every path out.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Errno() { return std::strerror(errno); }

std::string ModeText(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string UserName(uid_t uid) {
  passwd* pw = getpwuid(uid);
  return pw != nullptr ? std::string(pw->pw_name) : "uid " + std::to_string(uid);
}

// Opens directory `dir` for use with the *at() calls. With `owner_uid`, it must belong to that
// user and be writable by no one else: then whatever is written relative to it lands in a
// directory that user controls anyway, wherever a link on the way pointed.
Fd OpenDir(const std::string& dir, std::optional<uid_t> owner_uid) {
  Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) throw Error("embedded postgres: cannot open directory " + dir + ": " + Errno());
  if (owner_uid) {
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) {
      throw Error("embedded postgres: cannot stat " + dir + ": " + Errno());
    }
    if (st.st_uid != *owner_uid || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
      throw Error("embedded postgres: refusing to write into " + dir + " (owned by " +
                  UserName(st.st_uid) + ", mode " + ModeText(st.st_mode) + "): it must belong to " +
                  UserName(*owner_uid) + " and be writable by no one else");
    }
  }
  return fd;
}

void WriteAll(int fd, const std::string& content, const std::string& what) {
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error("embedded postgres: cannot write " + what + ": " + Errno());
    done += static_cast<std::size_t>(n);
  }
}

// Postgres reads the whole server log only to show its end.
constexpr std::size_t kLogTailBytes = 16 * 1024;
// postmaster.pid is a few short lines.
constexpr std::size_t kPidFileBytes = 4096;
// Creates each missing ancestor of `dir` with mode 0755 (whatever the umask), so that the server
// account can traverse them.
void CreateParents(const fs::path& dir) {
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = dir.parent_path(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.root_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (mkdir(it->c_str(), 0755) != 0) {
      if (errno == EEXIST) continue;  // made by someone else meanwhile: left as it is
      throw Error("embedded postgres: cannot create directory " + it->string() + ": " +
                  std::strerror(errno));
    }
    // Through a descriptor: a link swapped in for the new directory must not get the mode.
    const Fd fd(open(it->c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() >= 0) fchmod(fd.get(), 0755);
  }
}

// The data directory's parent must not let other users rename or replace the data directory:
// a directory anyone may write to is refused unless it is sticky (like /tmp, where only the
// owner of an entry may rename it).
void CheckParent(const fs::path& dir) {
  const fs::path parent = dir.parent_path();
  struct stat st {};
  if (stat(parent.c_str(), &st) != 0) return;  // reported when the data directory is created
  if ((st.st_mode & S_IWOTH) != 0 && (st.st_mode & S_ISVTX) == 0) {
    throw ConfigError("embedded postgres: " + parent.string() + " (mode " + ModeText(st.st_mode) +
                      ") may be written by any user, who could replace the data directory " +
                      dir.string() + "; choose a data directory elsewhere (GEN_DURABLE_HOME)");
  }
}

// The data directory must be owned by the account that runs the server and be mode 0700, as
// initdb makes it: otherwise another account could plant files in it, or read the cluster. An
// existing directory is never chowned or chmodded: taking over a directory someone else made
// is how a link planted in advance would get followed. A missing one is created so.
void EnsureDataDir(const fs::path& dir, const FileOwner& expected) {
  const std::string d = dir.string();
  if (mkdir(d.c_str(), 0700) == 0) {
    Fd fd(open(d.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) throw Error("embedded postgres: cannot open " + d + ": " + Errno());
    if (fchmod(fd.get(), 0700) != 0 ||
        (IsRoot() && fchown(fd.get(), expected.uid, expected.gid) != 0)) {
      throw Error("embedded postgres: cannot give " + d + " to " + UserName(expected.uid) +
                  " with mode 0700: " + Errno());
    }
  } else if (errno != EEXIST) {
    throw Error("embedded postgres: cannot create " + d + ": " + Errno());
  }
  struct stat st {};
  if (stat(d.c_str(), &st) != 0) {
    throw Error("embedded postgres: cannot stat " + d + ": " + Errno());
  }
  if (!S_ISDIR(st.st_mode)) {
    throw ConfigError("embedded postgres: " + d + " exists and is not a directory");
  }
  if (st.st_uid != expected.uid) {
    throw ConfigError("embedded postgres: the data directory " + d + " is owned by " +
                      UserName(st.st_uid) + ", not by " + UserName(expected.uid) +
                      ", which runs the server; run `chown -R " + UserName(expected.uid) + " " + d +
                      "` if it is yours, or choose another data directory");
  }
  if ((st.st_mode & 07777) != 0700) {
    throw ConfigError("embedded postgres: the data directory " + d + " has mode " +
                      ModeText(st.st_mode) + "; it must be mode 0700 (only " +
                      UserName(expected.uid) + " may enter it): run `chmod 0700 " + d + "`");
  }
}

// When root, the server runs as `postgres` and must be able to reach its data directory.
void CheckTraversable(const fs::path& dir, const ServerAccount& account) {
  for (fs::path p = dir.parent_path(); !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (stat(p.c_str(), &st) == 0) {
      bool ok = (st.st_mode & S_IXOTH) || (st.st_uid == account.uid && (st.st_mode & S_IXUSR)) ||
                (st.st_gid == account.gid && (st.st_mode & S_IXGRP));
      if (!ok) {
        throw Error(
            "embedded postgres: the server runs as the `postgres` user, which cannot "
            "enter " +
            p.string() + " (on the way to " + dir.string() + "); run `chmod o+x " + p.string() +
            "` or choose a data directory elsewhere");
      }
    }
    if (p == p.root_path()) break;
  }
}

// Serializes initdb/start of one data directory across processes (an exclusive flock on its
// parent directory, released when this object dies or the process exits).
class StartLock {
 public:
  explicit StartLock(const fs::path& parent) {
    fd_ = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) return;  // best effort: the attach-after-failure path still covers races
    while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~StartLock() {
    if (fd_ >= 0) close(fd_);
  }
  StartLock(const StartLock&) = delete;
  StartLock& operator=(const StartLock&) = delete;

 private:
  int fd_ = -1;
};

fs::path ServerLog(const std::string& data_dir) { return fs::path(data_dir) / "server.log"; }

std::string LogTail(const std::string& data_dir) {
  std::string log = ReadDataFileTail(data_dir, "server.log", kLogTailBytes);
  if (log.empty()) return "(server log " + ServerLog(data_dir).string() + " is empty)";
  return "server log " + ServerLog(data_dir).string() + ", last lines:\n" +
         TailOf(TrimRight(log), 3000);
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
  std::optional<ServerAccount> owner;
  if (IsRoot()) owner = LookUpServerAccount();

  CreateParents(dir);
  CheckParent(dir);
  if (owner) CheckTraversable(dir, *owner);
  StartLock lock(dir.parent_path());
  EnsureDataDir(dir, ExpectedOwner());

  std::error_code ec;
  if (!fs::exists(dir / "PG_VERSION", ec)) InitDb();

  if (ServerRunning()) {
    started_by_us_ = false;
    Attach();
    return;
  }
  WriteSettings();
  ToolResult start =
      RunServerTool("pg_ctl", {"-D", options_.data_dir, "-l", ServerLog(options_.data_dir).string(),
                               "-w", "-t", std::to_string(kPgCtlTimeoutSeconds), "start"});
  if (start.exit_code != 0) {
    // Another process may have started the same cluster between our status check and start.
    if (ServerRunning()) {
      started_by_us_ = false;
      Attach();
      return;
    }
    throw Error("embedded postgres: failed to start the server in " + options_.data_dir +
                " (pg_ctl exit " + std::to_string(start.exit_code) +
                "): " + TrimRight(start.output) + "\n" + LogTail(options_.data_dir));
  }
  started_by_us_ = true;
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
  // postmaster.pid tells where the running server really listens: a cluster started by someone
  // else (the test script) may use another port or socket directory than our options.
  const auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
  while (true) {
    std::istringstream in(ReadDataFileTail(options_.data_dir, "postmaster.pid", kPidFileBytes));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    // Lines: pid, data dir, start time, port, socket dir, listen addr, shmem key, status.
    if (lines.size() >= 5) {
      int port = std::atoi(lines[3].c_str());
      if (port > 0) port_ = port;
      if (!lines[4].empty()) socket_dir_ = lines[4];
    }
    PGPing ping = PQping(ConnInfo("postgres").c_str());
    if (ping == PQPING_OK) return;
    if (ping == PQPING_NO_ATTEMPT) {
      throw Error("embedded postgres: invalid connection parameters: " + ConnInfo("postgres"));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error("embedded postgres: the server in " + options_.data_dir +
                  " runs but does not accept connections at " + ConnInfo("postgres") + "\n" +
                  LogTail(options_.data_dir));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string EmbeddedCluster::ConnInfo(const std::string& dbname) const {
  return "host=" + ConnValue(socket_dir_) + " port=" + std::to_string(port_) +
         " user=postgres dbname=" + ConnValue(dbname);
}

std::string EmbeddedCluster::AppConnInfo(const std::string& dbname) const {
  return "host=" + ConnValue(socket_dir_) + " port=" + std::to_string(port_) + " user=" + kAppRole +
         " dbname=" + ConnValue(dbname);
}

namespace {

using ConnPtr = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using ResultPtr = std::unique_ptr<PGresult, decltype(&PQclear)>;

ConnPtr AdminConnect(const std::string& conninfo, const std::string& purpose) {
  ConnPtr conn(PQconnectdb(conninfo.c_str()), &PQfinish);
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    std::string reason = conn ? TrimRight(PQerrorMessage(conn.get())) : "out of memory";
    throw DatabaseError("embedded postgres: cannot connect to " + purpose + ": " + reason,
                        Retry::kRetryable, "", purpose);
  }
  return conn;
}

// Runs an admin statement; returns its SQLSTATE ("" on success) unless it is not one of the
// `tolerated` ones, then throws.
std::string AdminExec(PGconn* conn, const std::string& sql, const std::string& what,
                      std::initializer_list<const char*> tolerated = {}) {
  ResultPtr res(PQexec(conn, sql.c_str()), &PQclear);
  const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return "";
  const char* state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state != nullptr ? state : "";
  for (const char* t : tolerated) {
    if (sqlstate == t) return sqlstate;
  }
  throw DatabaseError("embedded postgres: " + what + " failed: " + TrimRight(PQerrorMessage(conn)),
                      Retry::kFatal, sqlstate, what);
}

// Admin statements of the embedded cluster (catalog lookups; no table of ours is involved).
// The application role: may log in, nothing more. Owning its database is what lets it create
// and migrate its schemas.
constexpr char kCreateAppRole[] =
    "CREATE ROLE gen_durable_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
    "NOBYPASSRLS";
// A role of that name made by hand with more rights is brought back to these.
constexpr char kAppRoleTooStrong[] =
    "SELECT 1 FROM pg_roles WHERE rolname = 'gen_durable_app' AND (rolsuper OR rolcreatedb OR "
    "rolcreaterole OR rolreplication OR rolbypassrls OR NOT rolcanlogin)";
constexpr char kRestrictAppRole[] =
    "ALTER ROLE gen_durable_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
    "NOBYPASSRLS";
// Whether database $1 belongs to the application role (pg_database is tiny).
constexpr char kDatabaseOwner[] =
    "SELECT r.rolname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1";
// Run inside a database left by an older version (owned by the superuser, like its schemas and
// tables): hands the database and every schema, table, view, sequence (not those a column
// owns, which follow their table), routine and type a superuser owns to the application role,
// outside the system schemas and extension members. Serialized by a transaction lock, so two
// processes upgrading at once do not both alter the same rows.
constexpr char kHandOver[] = R"SQL(
DO $gd$
DECLARE
  r record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('gen_durable embedded hand-over'));
  EXECUTE format('ALTER DATABASE %I OWNER TO gen_durable_app', current_database());
  FOR r IN
    SELECT n.oid, n.nspname FROM pg_namespace n
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
      AND n.nspowner IN (SELECT oid FROM pg_roles WHERE rolsuper)
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_namespace'::regclass
                      AND e.objid = n.oid AND e.deptype = 'e')
  LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO gen_durable_app', r.nspname);
  END LOOP;
  FOR r IN
    SELECT c.oid::regclass AS name,
           CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                          WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                          ELSE 'TABLE' END AS kind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND c.relowner IN (SELECT oid FROM pg_roles WHERE rolsuper)
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                      AND e.objid = c.oid AND e.deptype IN ('e', 'a', 'i'))
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO gen_durable_app', r.kind, r.name);
  END LOOP;
  FOR r IN
    SELECT p.oid::regprocedure AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
      AND p.proowner IN (SELECT oid FROM pg_roles WHERE rolsuper)
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                      AND e.objid = p.oid AND e.deptype = 'e')
  LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO gen_durable_app', r.name);
  END LOOP;
  FOR r IN
    SELECT t.oid::regtype AS name, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END AS kind
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
      AND t.typtype IN ('e', 'd', 'r')
      AND t.typowner IN (SELECT oid FROM pg_roles WHERE rolsuper)
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_type'::regclass
                      AND e.objid = t.oid AND e.deptype = 'e')
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO gen_durable_app', r.kind, r.name);
  END LOOP;
END
$gd$)SQL";

}  // namespace

std::string EmbeddedCluster::CreateAppDatabase(const std::string& name) {
  if (name.empty()) throw InvalidArgument("embedded postgres: empty database name");
  ConnPtr conn = AdminConnect(ConnInfo("postgres"), "create_app_database");
  // 42710: it exists; 23505: a concurrent CREATE ROLE won the catalog insert.
  AdminExec(conn.get(), kCreateAppRole, "create_app_role", {"42710", "23505"});
  {
    ResultPtr res(PQexec(conn.get(), kAppRoleTooStrong), &PQclear);
    if (res && PQresultStatus(res.get()) == PGRES_TUPLES_OK && PQntuples(res.get()) > 0) {
      AdminExec(conn.get(), kRestrictAppRole, "restrict_app_role");
    }
  }
  char* quoted = PQescapeIdentifier(conn.get(), name.c_str(), name.size());
  if (quoted == nullptr) {
    throw InvalidArgument("embedded postgres: bad database name '" + name +
                          "': " + TrimRight(PQerrorMessage(conn.get())));
  }
  const std::string sql =
      "CREATE DATABASE " + std::string(quoted) + " OWNER gen_durable_app TEMPLATE template0";
  PQfreemem(quoted);
  // 42P04: it exists. 23505: a concurrent CREATE of the same name won the catalog insert.
  const std::string created = AdminExec(conn.get(), sql, "create_app_database", {"42P04", "23505"});
  if (!created.empty()) {
    const char* params[] = {name.c_str()};
    ResultPtr res(PQexecParams(conn.get(), kDatabaseOwner, 1, nullptr, params, nullptr, nullptr, 0),
                  &PQclear);
    const bool ours = res && PQresultStatus(res.get()) == PGRES_TUPLES_OK &&
                      PQntuples(res.get()) == 1 &&
                      std::string(PQgetvalue(res.get(), 0, 0)) == kAppRole;
    if (!ours) {
      ConnPtr db = AdminConnect(ConnInfo(name), "hand_over_database");
      AdminExec(db.get(), kHandOver, "hand_over_database");
    }
  }
  return AppConnInfo(name);
}

void EmbeddedCluster::CreateDatabase(const std::string& name) {
  if (name.empty()) throw InvalidArgument("embedded postgres: empty database name");
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(ConnInfo("postgres").c_str()),
                                                    &PQfinish);
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    std::string reason = conn ? TrimRight(PQerrorMessage(conn.get())) : "out of memory";
    throw DatabaseError(
        "embedded postgres: cannot connect to create database '" + name + "': " + reason,
        Retry::kRetryable, "", "create_database");
  }
  char* quoted = PQescapeIdentifier(conn.get(), name.c_str(), name.size());
  if (quoted == nullptr) {
    throw InvalidArgument("embedded postgres: bad database name '" + name +
                          "': " + TrimRight(PQerrorMessage(conn.get())));
  }
  // template0 is never connected to, so concurrent creations cannot fail with 55006 (source
  // database in use) as they can with template1.
  std::string sql = "CREATE DATABASE " + std::string(quoted) + " TEMPLATE template0";
  PQfreemem(quoted);
  std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), sql.c_str()), &PQclear);
  if (res != nullptr && PQresultStatus(res.get()) == PGRES_COMMAND_OK) return;
  const char* state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state != nullptr ? state : "";
  // 42P04: it exists. 23505: a concurrent CREATE of the same name won the catalog insert.
  if (sqlstate == "42P04" || sqlstate == "23505") return;
  throw DatabaseError("embedded postgres: CREATE DATABASE " + name +
                          " failed: " + TrimRight(PQerrorMessage(conn.get())),
                      Retry::kFatal, sqlstate, "create_database");
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

void ReplaceDataFile(const std::string& dir, const std::string& name, const std::string& content,
                     const std::optional<FileOwner>& owner) {
  const Fd dir_fd = OpenDir(dir, owner ? owner->uid : geteuid());
  const std::string what = dir + "/" + name;
  // A fresh name each try: O_CREAT|O_EXCL fails on anything already there, a link included,
  // so a name planted in advance costs a retry, never a write through it.
  static std::atomic<unsigned> counter{0};
  std::string tmp;
  int raw = -1;
  for (int attempt = 0; attempt < 100 && raw < 0; ++attempt) {
    tmp = name + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
    raw = openat(dir_fd.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 0600);
    if (raw < 0 && errno != EEXIST) {
      throw Error("embedded postgres: cannot create a temporary file in " + dir + ": " + Errno());
    }
  }
  if (raw < 0) throw Error("embedded postgres: no free temporary name for " + what);
  const Fd fd(raw);
  try {
    WriteAll(fd.get(), content, what);
    if (fchmod(fd.get(), 0600) != 0) {
      throw Error("embedded postgres: cannot chmod " + what + ": " + Errno());
    }
    if (owner && fchown(fd.get(), owner->uid, owner->gid) != 0) {
      throw Error("embedded postgres: cannot chown " + what + ": " + Errno());
    }
    // rename replaces a link at `name` itself, never what it points to.
    if (renameat(dir_fd.get(), tmp.c_str(), dir_fd.get(), name.c_str()) != 0) {
      throw Error("embedded postgres: cannot write " + what + ": " + Errno());
    }
  } catch (...) {
    unlinkat(dir_fd.get(), tmp.c_str(), 0);
    throw;
  }
}

void AppendToDataFile(const std::string& dir, const std::string& name, const std::string& content,
                      uid_t owner_uid) {
  const Fd dir_fd = OpenDir(dir, owner_uid);
  const std::string what = dir + "/" + name;
  const Fd fd(openat(dir_fd.get(), name.c_str(),
                     O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (fd.get() < 0) throw Error("embedded postgres: cannot open " + what + ": " + Errno());
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    throw Error("embedded postgres: cannot stat " + what + ": " + Errno());
  }
  // A hard link would let the other account aim this write at a file it cannot write itself.
  if (!S_ISREG(st.st_mode) || st.st_uid != owner_uid || st.st_nlink != 1) {
    throw Error("embedded postgres: refusing to append to " + what +
                ": not a regular file of its own owned by " + UserName(owner_uid));
  }
  WriteAll(fd.get(), content, what);
}

std::string ReadDataFileTail(const std::string& dir, const std::string& name,
                             std::size_t max_bytes) {
  Fd dir_fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return "";
  // O_NONBLOCK: a FIFO planted at `name` must not block the open.
  const Fd fd(openat(dir_fd.get(), name.c_str(),
                     O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (fd.get() < 0) return "";
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
  const off_t size = st.st_size;
  off_t offset = size > static_cast<off_t>(max_bytes) ? size - static_cast<off_t>(max_bytes) : 0;
  std::string out;
  char buf[4096];
  while (out.size() < max_bytes) {
    const std::size_t want = std::min(sizeof(buf), max_bytes - out.size());
    const ssize_t n = pread(fd.get(), buf, want, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    offset += n;
  }
  return out;
}

std::string DefaultDataDir() {
  if (const char* home = std::getenv("GEN_DURABLE_HOME"); home != nullptr && *home != '\0') {
    return (fs::path(home) / "pgdata").string();
  }
  if (IsRoot()) return "/var/lib/gen_durable/pgdata";
  fs::path base;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg == '/') {
    base = xdg;
  } else {
    const char* home = std::getenv("HOME");
    if (home == nullptr || *home == '\0') {
      passwd* pw = getpwuid(geteuid());
      home = pw != nullptr ? pw->pw_dir : nullptr;
    }
    // A shared directory such as /tmp would let another user create the cluster first.
    if (home == nullptr || *home != '/') {
      throw ConfigError(
          "embedded postgres: no home directory to put the data directory in (HOME is unset "
          "and the user has no passwd entry); set GEN_DURABLE_HOME or pass --database");
    }
    base = fs::path(home) / ".local" / "share";
  }
  return (base / "gen_durable" / "pgdata").string();
}

}  // namespace gen_durable::detail
