// Fuzz target: the `gen_durable` command line, parsed as main() parses it.
//
// The input is split on NUL bytes into arguments (argv[0] is "gen_durable"), then parsed by
// ParseCommandLine, the function main() uses. Then the checks each command makes before it
// touches a database run on the parsed values (--queues, --rate-limit, JSON flags), as they
// would in the command. Properties: nothing throws out of the parser; a bad command line comes
// back as a usage error (exit status 2) with one line of explanation, --help as exit status 0
// with its text; the commands' own checks throw only UsageError (also exit status 2).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gen_durable/cli.hpp"       // tools/
#include "gen_durable/commands.hpp"  // tools/
#include "input.hpp"

namespace gen_durable::fuzz {
namespace {

using tools::Command;
using tools::ParsedCommand;

// What the command would check first: only UsageError may come out.
void CheckArguments(const ParsedCommand& cmd) {
  switch (cmd.command) {
    case Command::kWorker:
      (void)tools::ParseQueues(cmd.worker.queues);
      (void)tools::ParseRateLimits(cmd.worker.rate_limits);
      break;
    case Command::kInsert:
      if (cmd.insert.rate_limit) (void)tools::ParseRateLimitRef(*cmd.insert.rate_limit);
      break;
    default:
      break;
  }
}

}  // namespace
}  // namespace gen_durable::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gen_durable;
  using namespace gen_durable::fuzz;
  std::vector<std::string> args = {"gen_durable"};
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {
    const auto nul = rest.find('\0');
    args.emplace_back(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
  }
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);

  const ParsedCommand cmd = tools::ParseCommandLine(static_cast<int>(args.size()), argv.data());
  if (cmd.command == Command::kNone) {
    if (cmd.exit_status == tools::kExitOk) {
      Check(!cmd.output.empty(), "--help prints the help");
    } else {
      Check(cmd.exit_status == tools::kExitUsage, "a bad command line is a usage error");
      Check(cmd.error.rfind("gen_durable: ", 0) == 0, "a usage error names the program");
      Check(cmd.error.find('\n') == std::string::npos, "a usage error is one line");
    }
    return 0;
  }
  Check(cmd.exit_status == tools::kExitOk && cmd.error.empty(), "a parsed command has no error");
  try {
    CheckArguments(cmd);
  } catch (const tools::UsageError& e) {
    Check(tools::ExitStatusOf(e) == tools::kExitUsage, "a UsageError exits with status 2");
  }
  return 0;
}
