// The pieces of the `gen_durable` command line: the flags several commands share, and one
// function per command adding it (with its flags and arguments) to the parser. cli.cpp puts
// them together.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "gen_durable/cli.hpp"  // tools/

namespace gen_durable::tools {

// Flags every command accepts, before or after the subcommand name. They are declared on each
// subcommand (not only on the root) so that `gen_durable show --help` lists them.
void AddCommonFlags(CLI::App* app, GlobalOptions& global, int& verbosity);
// --json.
void AddJsonFlag(CLI::App* app, GlobalOptions& global);
// The access flags of an HTTP surface; `prefix` distinguishes the worker's metrics flags.
void AddHttpFlags(CLI::App* app, HttpArgs& http, const std::string& prefix, const char* env);
// What a duration flag's variable counts (a bare number on the command line counts the same).
enum class DurationIn {
  kMilliseconds,  // an integer
  kSeconds,       // a decimal number (1500ms becomes 1.5)
  kWholeSeconds,  // an integer: a fraction of a second is refused
};
// The value of a duration flag (ParseDurationMs: 250ms, 30s, 5m, 1h, 1d), converted to what
// the flag's variable counts. A bad value is a usage error naming the flag.
CLI::Validator Duration(DurationIn unit = DurationIn::kMilliseconds);
// Appended to the help of each duration flag.
inline constexpr const char* kDurationHelp = " (a duration: 250ms, 30s, 5m, 1h, 1d; bare: ms)";
inline constexpr const char* kSecondsHelp = " (a duration: 30s, 5m, 1h, 1d; bare: seconds)";

// Adds subcommand `name` with the common flags, and --json when `json`; returns it.
CLI::App* AddCommand(CLI::App& app, ParsedCommand& cmd, const std::string& name,
                     const std::string& description, bool json);

// Each adds its subcommand to `app`, its values bound to `cmd`, and returns it.
CLI::App* AddMigrate(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddInsert(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddSignal(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddShow(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddList(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddStats(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddPause(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddResume(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddScale(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddCancel(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddRetry(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddDelete(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddNodes(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddSchedules(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddGrant(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddDashboard(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddWorker(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddDemo(CLI::App& app, ParsedCommand& cmd);
CLI::App* AddBench(CLI::App& app, ParsedCommand& cmd);

}  // namespace gen_durable::tools
