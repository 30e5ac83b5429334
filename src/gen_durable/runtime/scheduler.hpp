// The periodic schedules of one engine (docs/guides/schedules.md): one thread that sleeps until
// the next slot of any schedule this node carries and fires the slots that are due. Leaderless:
// every node carrying a schedule runs this for it, and the fire statement (ScheduleStore::Fire)
// lets exactly one of them insert each slot.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/model/cron.hpp"
#include "gen_durable/pg/pool.hpp"
#include "gen_durable/runtime/periodic.hpp"
#include "gen_durable/runtime/reporter.hpp"
#include "gen_durable/store/schedule_store.hpp"

namespace gen_durable::detail {

class Scheduler {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  // Carries `schedules` (definitions resolved by the engine); `store` must outlive it. Fires
  // are reported through `report`.
  Scheduler(const ScheduleStore& store, std::vector<ScheduleDefinition> schedules,
            ConnectionFactory connect, std::shared_ptr<Reporter> report);
  ~Scheduler() { Stop(); }

  // Writes every definition (the engine's start, on its connection). Slots that passed
  // before this call while no node fired them count as missed (the schedule's policy);
  // slots from now on are this node's to fire.
  void Register(pg::Connection& conn);
  // Starts the thread (nothing when the engine carries no schedule).
  void Start();
  void Stop();
  // Fires what is due now on every schedule; returns the earliest next slot (tests, and the
  // thread's loop). Failures are logged and retried by the caller's next round.
  TimePoint FireDue();

 private:
  // Fires the due slots of `name`; returns its next slot (max() when unknown).
  TimePoint FireOne(pg::Connection& conn, const ScheduleDefinition& own);
  const CronExpression& Expression(const std::string& cron, const std::string& zone);

  const ScheduleStore& store_;
  const std::vector<ScheduleDefinition> schedules_;
  const std::shared_ptr<Reporter> report_;
  TimePoint registered_at_{};
  // Parsed expressions by "zone\ncron" (definitions change rarely; parsing is not free).
  std::map<std::string, CronExpression> expressions_;
  pg::ReconnectingConnection conn_;
  Wakeup wake_;
  std::thread thread_;
};

}  // namespace gen_durable::detail
