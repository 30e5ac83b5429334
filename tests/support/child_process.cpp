// ChildProcess: fork/exec with captured output, for the black-box tests.
#include "support/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "support/pg_fixture.hpp"

extern char** environ;

namespace gen_durable::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string_view NameOf(std::string_view entry) { return entry.substr(0, entry.find('=')); }

// True when the child must not inherit variable `name`: unset, or set to another value.
bool Replaced(const ChildOptions& options, std::string_view name) {
  for (const auto& n : options.unset_env) {
    if (n == name) return true;
  }
  for (const auto& e : options.set_env) {
    if (NameOf(e) == name) return true;
  }
  return false;
}

// This process's environment without the variables `options` unsets or sets, then the ones it
// sets.
std::vector<std::string> ChildEnvironment(const ChildOptions& options) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view name = NameOf(*e);
    if (Replaced(options, name)) continue;
    env.emplace_back(*e);
  }
  env.insert(env.end(), options.set_env.begin(), options.set_env.end());
  return env;
}

// `program` as a path: itself when it names one, else the first executable of that name on PATH
// (looked up here, because between fork and exec only async-signal-safe calls are allowed).
std::string Resolve(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const std::size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return program;  // not found: exec fails and the child exits 127
}

int MakeTemp(const char* pattern, std::string& path) {
  std::string buf = pattern;
  const int fd = mkstemp(buf.data());
  if (fd < 0) throw std::runtime_error(std::string("mkstemp failed for ") + pattern);
  path = buf;
  return fd;
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const ChildOptions& options)
    : own_process_group_(options.own_process_group) {
  if (argv.empty()) throw std::runtime_error("ChildProcess: empty argv");
  const int out_fd = MakeTemp("/tmp/gd_child_out_XXXXXX", out_path_);
  const int err_fd = MakeTemp("/tmp/gd_child_err_XXXXXX", err_path_);
  const int null_fd = open("/dev/null", O_RDONLY);
  const std::string program = Resolve(argv[0]);
  std::vector<std::string> argv_store = argv;
  std::vector<char*> args;
  for (auto& a : argv_store) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env_store = ChildEnvironment(options);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  const bool group = own_process_group_;
  pid_ = fork();
  if (pid_ == 0) {
    // Only async-signal-safe calls from here to exec: the test process has threads.
    if (group) setpgid(0, 0);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execve(program.c_str(), args.data(), envp.data());
    _exit(127);
  }
  if (null_fd >= 0) close(null_fd);
  close(out_fd);
  close(err_fd);
  if (pid_ < 0) {
    unlink(out_path_.c_str());
    unlink(err_path_.c_str());
    throw std::runtime_error("fork failed");
  }
  // Also here: whichever side runs first, the group exists once the constructor returns.
  if (group) setpgid(pid_, pid_);
}

ChildProcess::~ChildProcess() {
  if (!exited_) {
    Kill();
  } else if (own_process_group_) {
    kill(-pid_, SIGKILL);  // whatever the wrapper left behind in its group
  }
  unlink(out_path_.c_str());
  unlink(err_path_.c_str());
}

void ChildProcess::Signal(int sig) {
  if (exited_) return;
  kill(own_process_group_ ? -pid_ : pid_, sig);
}

void ChildProcess::Kill() {
  if (exited_) return;
  kill(own_process_group_ ? -pid_ : pid_, SIGKILL);
  while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
  }
  exited_ = true;
}

bool ChildProcess::Exited() {
  if (!exited_ && waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
  return exited_;
}

bool ChildProcess::Wait(Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!Exited()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

int ChildProcess::exit_code() const {
  return exited_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
}

bool ChildProcess::killed_by(int sig) const {
  return exited_ && WIFSIGNALED(status_) && WTERMSIG(status_) == sig;
}

std::string ChildProcess::out() const { return ReadFile(out_path_); }
std::string ChildProcess::err() const { return ReadFile(err_path_); }

ChildResult RunChild(const std::vector<std::string>& argv, const ChildOptions& options,
                     ChildProcess::Clock::duration timeout) {
  ChildProcess p(argv, options);
  ChildResult r;
  r.exited = p.Wait(timeout);
  if (!r.exited) p.Kill();
  r.exit_code = r.exited ? p.exit_code() : -1;
  r.out = p.out();
  r.err = p.err();
  return r;
}

std::vector<std::string> CliCommand(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {CliPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace gen_durable::testing
