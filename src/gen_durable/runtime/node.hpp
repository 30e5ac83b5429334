// Process identity: who this node is, and whether another node on this host is dead.
#pragma once

#include <string>

namespace gen_durable::detail {

struct ProcessIdentity {
  std::string host;
  int pid = 0;
  // Start time of the process (from /proc), so a reused pid is not mistaken for the original.
  std::string proc_start;
};

ProcessIdentity SelfIdentity();
// A new node id "host:pid:token" (token random, so engines in one process differ).
std::string NewNodeId(const ProcessIdentity& self);
// True when process `pid` on this host no longer exists or is a different process than the
// one that started at `proc_start`.
bool ProcessIsGone(int pid, const std::string& proc_start);

}  // namespace gen_durable::detail
