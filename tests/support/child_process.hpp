// Child processes for black-box tests: the CLI (or any program) run with an adjusted copy of the
// test's environment, its stdout and stderr captured, waited for with a timeout, signalled and
// killed.
//
//   ChildProcess worker(CliCommand({"worker", "--database", db}));
//   ...
//   worker.Signal(SIGTERM);
//   ASSERT_TRUE(worker.Wait(std::chrono::seconds(15))) << worker.err();
//   EXPECT_EQ(worker.exit_code(), 0);
//
//   ChildResult r = RunChild(CliCommand({"stats", "--json", "--database", db}));
//
// Not thread-safe: one thread drives a ChildProcess.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace gen_durable::testing {

struct ChildOptions {
  // Variables (by name) left out of the environment the child inherits from this process.
  std::vector<std::string> unset_env;
  // Variables set for the child, "NAME=value", each replacing an inherited one of that name.
  std::vector<std::string> set_env;
  // Runs the child in a process group of its own and sends every signal to the whole group:
  // for wrappers (faketime, a shell) whose own child must get the signals too, and must not
  // outlive the test.
  bool own_process_group = false;
};

// One running child. stdin is /dev/null; stdout and stderr go to temporary files (a pipe could
// fill up and block a long-running worker), readable at any time. Killed (SIGKILL) and reaped on
// destruction, so a failed assertion leaves no process behind.
class ChildProcess {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts `argv`; argv[0] is a path, or a program name looked up on PATH. Throws
  // std::runtime_error when the process cannot be created; a program that cannot be executed
  // makes the child exit with status 127.
  explicit ChildProcess(const std::vector<std::string>& argv, const ChildOptions& options = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Sends `sig` to the child (to its group with own_process_group). Does nothing once the child
  // is reaped: its pid may belong to another process by then.
  void Signal(int sig);
  // SIGKILLs the child and waits until it is reaped.
  void Kill();

  // Reaps the child if it has exited; true when it has. Reaping matters to callers that look
  // for live processes: a zombie still "exists" for kill(pid, 0).
  bool Exited();
  // Waits until the child exits or `timeout` passes; true when it exited (and is reaped).
  bool Wait(Clock::duration timeout);

  // True once the child was reaped (by Exited, Wait or Kill).
  bool exited() const { return exited_; }
  // The child's exit status; -1 when it died from a signal or has not been reaped.
  int exit_code() const;
  // True when the reaped child died from signal `sig`.
  bool killed_by(int sig) const;

  // Everything the child wrote so far.
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  bool own_process_group_ = false;
  bool exited_ = false;
  int status_ = 0;  // from waitpid, once exited_
  std::string out_path_;
  std::string err_path_;
};

// What a child that ran to completion left.
struct ChildResult {
  bool exited = false;  // false: still running at the timeout (it was killed)
  int exit_code = -1;   // as ChildProcess::exit_code()
  std::string out;
  std::string err;
};

// Runs `argv` to completion, killing it when it runs longer than `timeout`.
ChildResult RunChild(const std::vector<std::string>& argv, const ChildOptions& options = {},
                     ChildProcess::Clock::duration timeout = std::chrono::seconds(60));

// The argv that runs the built `gen_durable` CLI (CliPath()) with `args`.
std::vector<std::string> CliCommand(const std::vector<std::string>& args);

}  // namespace gen_durable::testing
