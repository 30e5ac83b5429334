// `gen_durable`: the command-line interface (SPEC §12). Parses the command line (cli.cpp), hands
// over to the commands in commands.cpp / demo.cpp, and turns whatever escapes into an exit status
// and one line on stderr.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <exception>

#include "gen_durable/bench.hpp"     // tools/
#include "gen_durable/cli.hpp"       // tools/
#include "gen_durable/commands.hpp"  // tools/
#include "gen_durable/demo.hpp"      // tools/

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
    case Command::kNone:
      break;
  }
  fmt::print(stderr, "gen_durable: no command given (see --help)\n");
  return kExitUsage;
}

int Main(int argc, char** argv) {
  // stdout is the output contract: library logs must never land there.
  spdlog::set_default_logger(spdlog::stderr_color_mt("gen_durable"));
  spdlog::set_level(spdlog::level::warn);

  const ParsedCommand cmd = ParseCommandLine(argc, argv);
  if (cmd.command == Command::kNone) {
    fmt::print("{}", cmd.output);
    if (!cmd.error.empty()) fmt::print(stderr, "{}\n", cmd.error);
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
    fmt::print(stderr, "gen_durable: {}\n", OneLine(e.what()));
    return ExitStatusOf(e);
  } catch (...) {
    fmt::print(stderr, "gen_durable: unknown error\n");
    return kExitFailure;
  }
}

}  // namespace
}  // namespace gen_durable::tools

int main(int argc, char** argv) { return gen_durable::tools::Main(argc, argv); }
