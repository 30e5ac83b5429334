// Operator requests (docs/security.md, "Control plane"), read and applied: paused queues, scale
// requests of gd_control, and cancels of rows this node holds. The decoding and judging of a
// request is model/control.hpp; this is the part that reads the tables and acts on the queues.
//
// Read from the tables only a privileged role writes, never from a notification's payload: when
// the listener is woken on the control channel or (re)connects, and once per heartbeat interval
// in any case, so a missed or forged notification changes nothing.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/model/control.hpp"
#include "gen_durable/runtime/core.hpp"
#include "gen_durable/runtime/periodic.hpp"
#include "gen_durable/runtime/queue_set.hpp"
#include "gen_durable/store/ops_store.hpp"

namespace gen_durable::detail {

class ControlReader {
 public:
  // Applies requests for node `node_id` of engine `engine` to `queues`, reading them every
  // `interval` and whenever woken.
  ControlReader(QueueSet& queues, const OpsStore& ops, std::string node_id, std::string engine,
                Millis interval, ConnectionFactory connect);
  ~ControlReader() { Stop(); }

  // At start, before any runner: a restarted node runs with what was asked meanwhile at once.
  void ApplyStandingScales(pg::Connection& c);
  void Start();
  void Stop();
  // Reads the requests now (a notification on the control channel, a listener reconnect).
  void Wake() { wake_.Poke(); }

 private:
  struct DueScale {
    ScaleRequest request;
    std::string declared;  // this node's declared configuration of the queue
  };
  // The scale requests of gd_control to apply now; each one judged is marked handled.
  std::vector<DueScale> DueScales(pg::Connection& c);
  // Applies what the tables ask now: paused queues, scale requests, cancels of held rows.
  void Sync(pg::Connection& c);

  QueueSet& queues_;
  const OpsStore& ops_;
  const std::string node_id_;
  const std::string engine_;
  const Millis interval_;
  const ConnectionFactory connect_;
  // Per queue, the seq of the last scale request judged since start (the starting thread,
  // then the control thread only).
  std::map<std::string, std::int64_t> handled_seq_;
  std::set<std::string> refused_;  // requests already reported invalid (same)
  Wakeup wake_;
  std::thread thread_;
};

}  // namespace gen_durable::detail
