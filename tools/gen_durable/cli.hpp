// The command line of `gen_durable`: argv parsed into the command to run and its arguments,
// with nothing run and no database touched (so it can be tested and fuzzed on its own).
//
//   ParsedCommand cmd = ParseCommandLine(argc, argv);
//   if (cmd.command == Command::kNone) { print cmd.output / cmd.error; return cmd.exit_status; }
#pragma once

#include <cstdint>
#include <string>

#include "gen_durable/bench.hpp"     // tools/
#include "gen_durable/commands.hpp"  // tools/
#include "gen_durable/demo.hpp"      // tools/

namespace gen_durable::tools {

enum class Command {
  kNone,
  kMigrate,
  kInsert,
  kSignal,
  kShow,
  kList,
  kStats,
  kWorker,
  kDemo,
  kBench,
  kPause,
  kResume,
  kScale,
  kCancel,
  kRetry,
  kDelete,
  kNodes,
  kDashboard,
  kGrant,
  kSchedules
};

struct ParsedCommand {
  // kNone: there is nothing to run (--help, or a usage error); print `output` on stdout and
  // `error` on stderr, then exit with `exit_status`.
  Command command = Command::kNone;
  int exit_status = kExitOk;
  std::string output;  // help text
  std::string error;   // one line: "gen_durable: ... (see --help)"
  GlobalOptions global;
  int verbosity = 0;  // -v count
  // The arguments of the command chosen (the others keep their defaults).
  InsertArgs insert;
  SignalArgs signal;
  std::int64_t show_id = 0;
  ListArgs list;
  WorkerArgs worker;
  DemoArgs demo;
  BenchArgs bench;
  std::string queue;  // pause, resume
  ScaleArgs scale;
  CancelArgs cancel;
  SelectArgs select;  // retry, delete
  DashboardArgs dashboard;
  GrantArgs grant;
  SchedulesArgs schedules;
};

// Builds the CLI's parser and parses `argv` (argv[0] is the program name). A malformed command
// line comes back as kNone with exit status kExitUsage (2) and the reason in `error`; --help as
// kNone with status 0 and the help in `output`. Never throws (but std::bad_alloc). Checks that
// need more than the parser (JSON flags, --queues, --rate-limit) are left to the commands.
ParsedCommand ParseCommandLine(int argc, const char* const* argv);

}  // namespace gen_durable::tools
