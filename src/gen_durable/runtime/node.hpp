// Process identity: who this node is, and whether another node on this host is dead; and the
// node's row in gd_nodes, which publishes that identity and the queues it runs.
#pragma once

#include <map>
#include <string>

#include "gen_durable/info.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/runtime/core.hpp"
#include "gen_durable/store/store.hpp"

namespace gen_durable::detail {

struct ProcessIdentity {
  std::string host;
  int pid = 0;
  // Start time of the process (from /proc), so a reused pid is not mistaken for the original.
  std::string proc_start;
  // The pid namespace the pid belongs to, as "<boot id>/<namespace>" ("" when unknown). A pid
  // says something about a process only to an observer in the same namespace of the same boot
  // of the same kernel: a node in a container sharing the host name (host networking) has pids
  // of its own, and a pid of the host may be anything to it.
  std::string pid_ns;
};

ProcessIdentity SelfIdentity();
// A new node id "host:pid:token" (token random, so engines in one process differ).
std::string NewNodeId(const ProcessIdentity& self);
// The pid namespace of this process (see ProcessIdentity::pid_ns); "" when /proc is not the
// one of this process's namespace (a /proc mounted by an ancestor namespace) or is unreadable.
std::string SelfPidNamespace();
// The start time of process `pid` as /proc records it ("" when there is no such process).
std::string ProcStart(int pid);
// True when process `pid` on this host no longer exists or is a different process than the
// one that started at `proc_start`.
bool ProcessIsGone(int pid, const std::string& proc_start);

// Writes this node's row (what `nodes` shows): its identity, its timings, and its queues with
// their concurrency.
class NodePublisher {
 public:
  NodePublisher(const Store& store, std::string node_id, std::string engine, ProcessIdentity self,
                Millis heartbeat_interval, Millis lease_ttl, ConnectionFactory connect);

  // Writes the row on `conn` with `queues` (queue -> concurrency); throws on failure.
  void Upsert(pg::Connection& conn, const std::map<std::string, int>& queues) const;
  // Writes the row with the queues this node runs (those draining left out), on a fresh
  // connection; a failure is logged.
  void Publish(const std::map<std::string, LocalQueueState>& queues) const;
  // Deletes the row (a clean stop); a failure is logged.
  void Remove() const;

 private:
  const Store& store_;
  const std::string node_id_;
  const std::string engine_;
  const ProcessIdentity self_;
  const Millis heartbeat_interval_;
  const Millis lease_ttl_;
  const ConnectionFactory connect_;
};

}  // namespace gen_durable::detail
