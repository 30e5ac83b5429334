// Finding and running the PostgreSQL programs (pg_config, initdb, pg_ctl) and runuser: the
// embedded cluster's only way of acting on the server from outside it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace gen_durable::detail::embedded {

// The OS user that owns the cluster when this process runs as root (initdb refuses root).
inline constexpr char kServerUser[] = "postgres";

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed; 127 when exec failed
  std::string output;  // stdout and stderr, interleaved
};

bool IsRoot();
// `s` without its trailing newlines and spaces.
std::string TrimRight(std::string s);
// Keeps at most the last `max_chars` characters, starting at a line boundary when possible.
std::string TailOf(const std::string& text, std::size_t max_chars);

// Runs argv[0] (an absolute path) with arguments, stdin from /dev/null, capturing stdout and
// stderr, and never through a shell, so paths with spaces or quotes cannot inject commands.
// With `new_session` the child gets its own session, so a server it leaves running does not
// receive the terminal's Ctrl-C meant for this process.
CommandResult RunCommand(const std::vector<std::string>& argv, bool new_session = false);
// The path of `runuser` (to run the server's programs as kServerUser); throws Error when absent.
std::string RunuserPath();
// The directory holding initdb, pg_ctl and postgres; throws Error when there is none.
std::string FindBinDir();

}  // namespace gen_durable::detail::embedded
