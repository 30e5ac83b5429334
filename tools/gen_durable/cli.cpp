// The parser of the `gen_durable` command line (docs/guides/cli.md): builds every command
// (cli_commands.cpp, cli_run_commands.cpp), parses, and says which one to run.
#include "gen_durable/cli.hpp"  // tools/

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <sstream>
#include <utility>

#include "gen_durable/cli_flags.hpp"  // tools/

namespace gen_durable::tools {

ParsedCommand ParseCommandLine(int argc, const char* const* argv) {
  ParsedCommand cmd;
  CLI::App app("gen_durable: a durable state-machine and job engine on PostgreSQL", "gen_durable");
  app.require_subcommand(1);
  AddCommonFlags(&app, cmd.global, cmd.verbosity);
  AddJsonFlag(&app, cmd.global);
  // In the order --help lists them.
  const std::pair<CLI::App*, Command> commands[] = {
      {AddMigrate(app, cmd), Command::kMigrate},    {AddInsert(app, cmd), Command::kInsert},
      {AddSignal(app, cmd), Command::kSignal},      {AddShow(app, cmd), Command::kShow},
      {AddList(app, cmd), Command::kList},          {AddStats(app, cmd), Command::kStats},
      {AddPause(app, cmd), Command::kPause},        {AddResume(app, cmd), Command::kResume},
      {AddScale(app, cmd), Command::kScale},        {AddCancel(app, cmd), Command::kCancel},
      {AddRetry(app, cmd), Command::kRetry},        {AddDelete(app, cmd), Command::kDelete},
      {AddNodes(app, cmd), Command::kNodes},        {AddDashboard(app, cmd), Command::kDashboard},
      {AddGrant(app, cmd), Command::kGrant},        {AddWorker(app, cmd), Command::kWorker},
      {AddDemo(app, cmd), Command::kDemo},          {AddBench(app, cmd), Command::kBench},
      {AddSchedules(app, cmd), Command::kSchedules}};

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help is an "error" with exit code 0: CLI11 writes the help text.
    if (e.get_exit_code() == 0) {
      std::ostringstream out;
      std::ostringstream err;
      cmd.exit_status = app.exit(e, out, err);
      cmd.output = out.str();
      cmd.error = err.str();
      return cmd;
    }
    cmd.exit_status = kExitUsage;
    cmd.error = fmt::format("gen_durable: {} (see --help)", detail::OneLine(e.what()));
    return cmd;
  }
  for (const auto& [sub, command] : commands) {
    if (*sub) {
      cmd.command = command;
      return cmd;
    }
  }
  // require_subcommand(1) makes this unreachable; keep the contract anyway.
  cmd.exit_status = kExitUsage;
  cmd.error = "gen_durable: no command given (see --help)";
  return cmd;
}

}  // namespace gen_durable::tools
