// Finding the PostgreSQL server programs and running them (or runuser) as child processes:
// fork/exec with an argv vector, a bounded capture of their output, and a timeout.
#include "gen_durable/embedded/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "gen_durable/error.hpp"

namespace gen_durable::detail::embedded {
namespace {

namespace fs = std::filesystem;

// Child processes that never finish (a hung initdb) must not hang the caller forever.
constexpr auto kCommandTimeout = std::chrono::seconds(180);
// Bound the captured output of a child; error messages only need the end of it.
constexpr std::size_t kMaxCapturedOutput = 64 * 1024;

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

}  // namespace

bool IsRoot() { return geteuid() == 0; }

std::string TrimRight(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string TailOf(const std::string& text, std::size_t max_chars) {
  if (text.size() <= max_chars) return text;
  std::size_t start = text.size() - max_chars;
  std::size_t nl = text.find('\n', start);
  if (nl != std::string::npos && nl + 1 < text.size()) start = nl + 1;
  return "..." + text.substr(start);
}

CommandResult RunCommand(const std::vector<std::string>& argv, bool new_session) {
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

}  // namespace gen_durable::detail::embedded
