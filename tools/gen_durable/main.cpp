// `gen_durable`: the command-line interface (docs/guides/cli.md). Parses the command line
// (cli.cpp), hands over to the command (declared in commands.hpp, demo.hpp and bench.hpp), and
// turns whatever escapes into an exit status and one line on stderr.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "gen_durable/bench.hpp"     // tools/
#include "gen_durable/cli.hpp"       // tools/
#include "gen_durable/commands.hpp"  // tools/
#include "gen_durable/conninfo.hpp"
#include "gen_durable/demo.hpp"  // tools/

namespace gen_durable::tools {
namespace {

int Run(const ParsedCommand& cmd) {
  switch (cmd.command) {
    case Command::kMigrate:
      return RunMigrate(cmd.global);
    case Command::kInsert:
      return RunInsert(cmd.global, cmd.insert);
    case Command::kSignal:
      return RunSignal(cmd.global, cmd.signal);
    case Command::kShow:
      return RunShow(cmd.global, cmd.show_id);
    case Command::kList:
      return RunList(cmd.global, cmd.list);
    case Command::kStats:
      return RunStats(cmd.global);
    case Command::kWorker:
      return RunWorker(cmd.global, cmd.worker);
    case Command::kDemo:
      return RunDemo(cmd.global, cmd.demo);
    case Command::kBench:
      return RunBench(cmd.global, cmd.bench);
    case Command::kPause:
      return RunPause(cmd.global, cmd.queue, true);
    case Command::kResume:
      return RunPause(cmd.global, cmd.queue, false);
    case Command::kScale:
      return RunScale(cmd.global, cmd.scale);
    case Command::kCancel:
      return RunCancel(cmd.global, cmd.cancel);
    case Command::kRetry:
      return RunRetry(cmd.global, cmd.select);
    case Command::kDelete:
      return RunDelete(cmd.global, cmd.select);
    case Command::kNodes:
      return RunNodes(cmd.global);
    case Command::kDashboard:
      return RunDashboard(cmd.global, cmd.dashboard);
    case Command::kGrant:
      return RunGrant(cmd.global, cmd.grant);
    case Command::kSchedules:
      return RunSchedules(cmd.global, cmd.schedules);
    case Command::kNone:
      break;
  }
  fmt::print(stderr, "gen_durable: no command given (see --help)\n");
  return kExitUsage;
}

// The arguments that carry a password (normally the --database value), as typed.
std::vector<std::string> ArgumentsWithPasswords(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (const std::string flag = "--database="; arg.rfind(flag, 0) == 0) arg.erase(0, flag.size());
    if (ConninfoHasPassword(arg)) out.push_back(arg);
  }
  return out;
}

// Overwrites the passwords in argv's own memory, which /proc/PID/cmdline and `ps` show for as
// long as the process runs. This narrows the window; it cannot close it (the command line was
// visible from exec until here, and stays in the shell's history).
void ScrubArguments(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    const std::string redacted = RedactConninfo(arg);
    if (redacted == arg) continue;
    // Same length, so nothing after it moves: each character of a secret becomes '*'.
    std::size_t a = 0;
    std::size_t r = 0;
    std::string scrubbed = arg;
    while (a < arg.size() && r < redacted.size() && arg[a] == redacted[r]) ++a, ++r;
    std::size_t a_end = arg.size();
    std::size_t r_end = redacted.size();
    while (a_end > a && r_end > r && arg[a_end - 1] == redacted[r_end - 1]) --a_end, --r_end;
    for (std::size_t k = a; k < a_end; ++k) scrubbed[k] = '*';
    std::memcpy(argv[i], scrubbed.data(), scrubbed.size());
  }
}

std::string Redacted(std::string text, const std::vector<std::string>& secrets_in) {
  for (const std::string& conninfo : secrets_in) text = RedactSecrets(text, conninfo);
  return text;
}

int Main(int argc, char** argv) {
  // stdout is the output contract: library logs must never land there.
  spdlog::set_default_logger(spdlog::stderr_color_mt("gen_durable"));
  spdlog::set_level(spdlog::level::warn);

  const std::vector<std::string> with_passwords = ArgumentsWithPasswords(argc, argv);
  const ParsedCommand cmd = ParseCommandLine(argc, argv);
  if (!with_passwords.empty()) {
    ScrubArguments(argc, argv);
    fmt::print(stderr,
               "gen_durable: warning: a password on the command line can be read by other users "
               "(ps, /proc) and stays in the shell history; put the connection string in "
               "GEN_DURABLE_DATABASE_URL, the password in a password file (PGPASSFILE, by default "
               "~/.pgpass) or the settings in a service file (PGSERVICE)\n");
  }
  // Whatever is printed below may quote the connection string (a parse error, libpq's
  // message): its password never leaves this process.
  std::vector<std::string> secrets_in = with_passwords;
  if (const char* env = std::getenv("GEN_DURABLE_DATABASE_URL"); env != nullptr) {
    secrets_in.emplace_back(env);
  }
  if (cmd.command == Command::kNone) {
    fmt::print("{}", Redacted(cmd.output, secrets_in));
    if (!cmd.error.empty()) fmt::print(stderr, "{}\n", Redacted(cmd.error, secrets_in));
    return cmd.exit_status;
  }
  if (cmd.verbosity >= 2) {
    spdlog::set_level(spdlog::level::debug);
  } else if (cmd.verbosity == 1) {
    spdlog::set_level(spdlog::level::info);
  }

  try {
    return Run(cmd);
  } catch (const std::exception& e) {
    fmt::print(stderr, "gen_durable: {}\n", Redacted(detail::OneLine(e.what()), secrets_in));
    return ExitStatusOf(e);
  } catch (...) {
    fmt::print(stderr, "gen_durable: unknown error\n");
    return kExitFailure;
  }
}

}  // namespace
}  // namespace gen_durable::tools

int main(int argc, char** argv) { return gen_durable::tools::Main(argc, argv); }
