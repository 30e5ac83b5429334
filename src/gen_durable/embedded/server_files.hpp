// What the running server writes into its data directory and the embedded cluster reads back:
// the server log (its end goes into error messages) and postmaster.pid (where it listens).
#pragma once

#include <string>

namespace gen_durable::detail::embedded {

// The server log pg_ctl is told to write, inside the data directory.
std::string ServerLogPath(const std::string& data_dir);
// The last lines of the server log, introduced by its path, for an error message.
std::string ServerLogTail(const std::string& data_dir);
// Where the running server really listens, from its postmaster.pid: a cluster started by
// someone else (the test script) may use another port or socket directory than our options.
// Sets `port` and `socket_dir` only to what the file holds; leaves them otherwise.
void ReadListenAddress(const std::string& data_dir, int& port, std::string& socket_dir);

}  // namespace gen_durable::detail::embedded
