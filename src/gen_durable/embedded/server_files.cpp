// Reading the server log's end and postmaster.pid, through the link-refusing ReadDataFileTail
// (the server's account controls the data directory).
#include "gen_durable/embedded/server_files.hpp"

#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <vector>

#include "gen_durable/embedded/embedded.hpp"
#include "gen_durable/embedded/process.hpp"

namespace gen_durable::detail::embedded {
namespace {

constexpr char kServerLogName[] = "server.log";
// Postgres reads the whole server log only to show its end.
constexpr std::size_t kLogTailBytes = 16 * 1024;
// postmaster.pid is a few short lines.
constexpr std::size_t kPidFileBytes = 4096;

}  // namespace

std::string ServerLogPath(const std::string& data_dir) {
  return (std::filesystem::path(data_dir) / kServerLogName).string();
}

std::string ServerLogTail(const std::string& data_dir) {
  std::string log = ReadDataFileTail(data_dir, kServerLogName, kLogTailBytes);
  if (log.empty()) return "(server log " + ServerLogPath(data_dir) + " is empty)";
  return "server log " + ServerLogPath(data_dir) + ", last lines:\n" + TailOf(TrimRight(log), 3000);
}

void ReadListenAddress(const std::string& data_dir, int& port, std::string& socket_dir) {
  std::istringstream in(ReadDataFileTail(data_dir, "postmaster.pid", kPidFileBytes));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  // Lines: pid, data dir, start time, port, socket dir, listen addr, shmem key, status.
  if (lines.size() >= 5) {
    int listed_port = std::atoi(lines[3].c_str());
    if (listed_port > 0) port = listed_port;
    if (!lines[4].empty()) socket_dir = lines[4];
  }
}

}  // namespace gen_durable::detail::embedded
