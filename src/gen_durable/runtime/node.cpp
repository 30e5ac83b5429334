// Process identity from the OS (host name, pid, and the pid's start time in /proc), and the
// node's row.
#include "gen_durable/runtime/node.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

namespace gen_durable::detail {

namespace {

// Field `n` (>= 3) of /proc/<pid>/stat ("" when unreadable): 3 is the state, 22 the start
// time in clock ticks since boot.
std::string ProcStatField(int pid, int n) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(in, line)) return "";
  // The command name (field 2) may contain spaces; fields resume after the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= n; ++i) {
    if (!(rest >> field)) return "";
  }
  return field;
}

std::string ReadLink(const char* path) {
  char buf[256];
  const ssize_t n = readlink(path, buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

std::string ProcStart(int pid) { return ProcStatField(pid, 22); }

ProcessIdentity SelfIdentity() {
  ProcessIdentity id;
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0) id.host = host;
  if (id.host.empty()) id.host = "localhost";
  id.pid = static_cast<int>(getpid());
  id.proc_start = ProcStart(id.pid);
  id.pid_ns = SelfPidNamespace();
  return id;
}

std::string SelfPidNamespace() {
  // /proc shows the pids of the namespace that mounted it: it speaks of our own pids only when
  // /proc/self is our pid (not so under `unshare -p` without a fresh /proc).
  if (ReadLink("/proc/self") != std::to_string(getpid())) return "";
  const std::string ns = ReadLink("/proc/self/ns/pid");  // "pid:[4026531836]"
  // Namespace numbers are reused by every kernel (the initial one is the same on all hosts):
  // the boot id tells this kernel's namespaces from those of another host of the same name.
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string boot;
  std::getline(in, boot);
  if (ns.empty() || boot.empty()) return "";
  return boot + "/" + ns;
}

std::string NewNodeId(const ProcessIdentity& self) {
  std::random_device rd;
  return fmt::format("{}:{}:{:08x}", self.host, self.pid, rd());
}

bool ProcessIsGone(int pid, const std::string& proc_start) {
  if (pid <= 0) return true;
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  // A zombie (exited, not yet reaped by its parent) still answers kill(): it is gone all the same.
  const std::string state = ProcStatField(pid, 3);
  if (state == "Z" || state == "X") return true;
  const std::string now = ProcStart(pid);
  // Unreadable /proc (another user's process): trust kill(), which said it exists.
  if (now.empty() || proc_start.empty()) return false;
  return now != proc_start;
}

NodePublisher::NodePublisher(const Store& store, std::string node_id, std::string engine,
                             ProcessIdentity self, Millis heartbeat_interval, Millis lease_ttl,
                             ConnectionFactory connect)
    : store_(store),
      node_id_(std::move(node_id)),
      engine_(std::move(engine)),
      self_(std::move(self)),
      heartbeat_interval_(heartbeat_interval),
      lease_ttl_(lease_ttl),
      connect_(std::move(connect)) {}

void NodePublisher::Upsert(pg::Connection& conn, const std::map<std::string, int>& queues) const {
  Json json = Json::object();
  for (const auto& [q, concurrency] : queues) json[q] = concurrency;
  store_.NodeUpsert(conn, node_id_, engine_, self_.host, self_.pid, self_.proc_start, self_.pid_ns,
                    heartbeat_interval_, lease_ttl_, json.dump());
}

void NodePublisher::Publish(const std::map<std::string, LocalQueueState>& queues) const {
  std::map<std::string, int> running;
  for (const auto& [q, state] : queues) {
    if (!state.draining) running[q] = state.concurrency;
  }
  try {
    auto conn = connect_("control");
    Upsert(*conn, running);
  } catch (const Error& e) {
    spdlog::warn("could not publish this node's queues: {}", e.what());
  }
}

void NodePublisher::Remove() const {
  try {
    auto conn = connect_("control");
    store_.NodeDelete(*conn, node_id_);
  } catch (const Error& e) {
    spdlog::warn("could not remove node row: {}", e.what());
  }
}

}  // namespace gen_durable::detail
