// The SQL of periodic schedules (docs/guides/schedules.md): their definitions in gd_schedules,
// the firing of slots, and the reads of the client and the dashboard.
//
// A ScheduleStore is bound to a schema like Store; it owns its statement texts and runs them on a
// connection the caller provides. Times cross it as milliseconds since the Unix epoch. The
// policy (which slots are due, which were missed) belongs to the Scheduler.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail {

// A schedule's definition, with its instance resolved (machine version, first step, queue,
// max_attempts) by the node that writes it.
struct ScheduleDefinition {
  std::string name;
  std::string cron;
  std::string zone;
  std::string fsm;
  int fsm_version = 1;
  std::string step;
  std::string queue;
  int priority = 0;
  std::optional<int> max_attempts;
  std::string state;   // encoded JSON
  std::string missed;  // "skip" or "catch_up"
  int catch_up_max = 1;
};

// A row of gd_schedules.
struct ScheduleRecord {
  ScheduleDefinition definition;
  std::optional<std::int64_t> last_fired_ms;
  std::optional<std::int64_t> next_fire_ms;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
};

// What one Fire did.
struct FireResult {
  bool advanced = false;  // last_fired moved: this call owned the slots
  std::vector<std::pair<std::int64_t, std::string>> inserted;  // (id, unique key)
};

class ScheduleStore {
 public:
  explicit ScheduleStore(std::string schema);

  // Writes the definition of `d` (a new row, or a changed definition of an existing one);
  // last_fired is kept, so a changed expression takes effect from the slot after it.
  // `next_fire_ms` is recorded for the listings.
  void Upsert(pg::Connection& c, const ScheduleDefinition& d,
              std::optional<std::int64_t> next_fire_ms) const;
  // The row of schedule `name`; nullopt when there is none.
  std::optional<ScheduleRecord> Read(pg::Connection& c, const std::string& name) const;
  // Every schedule, by name.
  std::vector<ScheduleRecord> List(pg::Connection& c) const;
  // In one statement: when last_fired still is `expected_ms` (NULL: none) and is older than
  // `new_last_ms`, sets it to `new_last_ms` (and next_fire to `next_fire_ms`) and inserts one
  // instance of the row's definition per key of `keys` (runnable now), announcing the queue;
  // else writes nothing. Keys whose instance is held (unique key) are not inserted twice.
  FireResult Fire(pg::Connection& c, const std::string& name,
                  std::optional<std::int64_t> expected_ms, std::int64_t new_last_ms,
                  std::optional<std::int64_t> next_fire_ms,
                  const std::vector<std::string>& keys) const;
  // Inserts one instance of schedule `name`'s definition now with unique key `key`, leaving
  // last_fired alone. nullopt when there is no such schedule (or the key is held).
  std::optional<std::int64_t> Trigger(pg::Connection& c, const std::string& name,
                                      const std::string& key) const;

 private:
  pg::Statement Make(const char* name, const std::string& sql) const;

  std::string schema_;
  std::string channel_;
  pg::Statement upsert_, read_, list_, fire_, trigger_;
};

}  // namespace gen_durable::detail
