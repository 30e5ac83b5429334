// Firing periodic schedules: which slots are due, which were missed, and the one statement that
// inserts them.
#include "gen_durable/runtime/scheduler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "gen_durable/error.hpp"

namespace gen_durable::detail {

namespace {

using std::chrono::milliseconds;

// Most slots one round inserts for one schedule while this node carried it (a node that was
// suspended for long); older ones count as missed.
constexpr std::size_t kMaxSlotsPerRound = 1000;
// The longest sleep: the definitions are read again at least this often (another node may
// have written a changed expression).
constexpr milliseconds kMaxSleep{60'000};
// After a failed round (the database unreachable).
constexpr milliseconds kRetry{1'000};
// A slot from before this node started is judged missed only once it is this old: until then a
// running node that is late (a busy machine, its own start) may still fire it.
constexpr milliseconds kMissGrace{2'000};

std::int64_t Ms(Scheduler::TimePoint t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

Scheduler::TimePoint FromMs(std::int64_t ms) { return Scheduler::TimePoint{milliseconds{ms}}; }

std::optional<std::int64_t> MsOf(const std::optional<Scheduler::TimePoint>& t) {
  if (!t) return std::nullopt;
  return Ms(*t);
}

}  // namespace

Scheduler::Scheduler(const ScheduleStore& store, std::vector<ScheduleDefinition> schedules,
                     ConnectionFactory connect, std::shared_ptr<Reporter> report)
    : store_(store),
      schedules_(std::move(schedules)),
      report_(std::move(report)),
      conn_([connect = std::move(connect)] { return connect("scheduler"); }) {}

const CronExpression& Scheduler::Expression(const std::string& cron, const std::string& zone) {
  const std::string key = zone + "\n" + cron;
  auto it = expressions_.find(key);
  if (it == expressions_.end()) {
    it = expressions_.emplace(key, CronExpression::Parse(cron, zone)).first;
  }
  return it->second;
}

void Scheduler::Register(pg::Connection& conn) {
  registered_at_ = std::chrono::system_clock::now();
  for (const auto& d : schedules_) {
    const auto next = Expression(d.cron, d.zone).Next(registered_at_);
    store_.Upsert(conn, d, MsOf(next));
  }
}

void Scheduler::Start() {
  if (schedules_.empty()) return;
  thread_ = std::thread([this] {
    for (;;) {
      const TimePoint next = FireDue();
      auto wait = kMaxSleep;
      if (next != TimePoint::max()) {
        const auto until =
            std::chrono::duration_cast<milliseconds>(next - std::chrono::system_clock::now());
        // (+1 ms: a wake a hair early would find the slot not yet due)
        wait = std::clamp(until + milliseconds{1}, milliseconds{1}, kMaxSleep);
      }
      if (!wake_.WaitFor(wait)) return;
    }
  });
}

void Scheduler::Stop() {
  wake_.Stop();
  if (thread_.joinable()) thread_.join();
}

Scheduler::TimePoint Scheduler::FireDue() {
  TimePoint earliest = TimePoint::max();
  try {
    auto& conn = conn_.Get();
    for (const auto& d : schedules_) earliest = std::min(earliest, FireOne(conn, d));
  } catch (const std::exception& e) {
    spdlog::warn("scheduler: {}", e.what());
    conn_.DropIfBroken();
    earliest = std::chrono::system_clock::now() + kRetry;
  }
  return earliest;
}

Scheduler::TimePoint Scheduler::FireOne(pg::Connection& conn, const ScheduleDefinition& own) {
  auto record = store_.Read(conn, own.name);
  if (!record) {  // deleted while this node carries it: written again, counted from now
    store_.Upsert(conn, own, std::nullopt);
    record = store_.Read(conn, own.name);
    if (!record) return TimePoint::max();
  }
  // The row's definition, not this node's: the newest node's start wrote it, and every node
  // fires that one.
  const ScheduleDefinition& d = record->definition;
  const CronExpression* expr = nullptr;
  try {
    expr = &Expression(d.cron, d.zone);
  } catch (const InvalidArgument& e) {
    spdlog::warn("schedule {}: the recorded definition is not usable here: {}", d.name, e.what());
    return std::chrono::system_clock::now() + kMaxSleep;
  }
  const TimePoint now = std::chrono::system_clock::now();
  const TimePoint base = FromMs(record->last_fired_ms.value_or(record->created_ms));
  // Slots before this node carried the schedule that no node fired passed while none ran:
  // the policy decides. Slots since are this node's to fire, however late it is.
  const TimePoint edge = registered_at_ - milliseconds{1};
  const bool catch_up = d.missed == "catch_up";
  std::vector<TimePoint> slots;
  std::int64_t missed = 0;
  std::optional<TimePoint> newest;
  if (base < edge) {
    // Recent unfired slots from before this node's start: wait for whoever may still fire them
    // (firing a later slot now would pass over them).
    const TimePoint settled = std::min(edge, now - kMissGrace);
    const auto pending = expr->Next(std::max(base, settled));
    if (pending && *pending <= edge) return *pending + kMissGrace;
    std::int64_t skipped = 0;
    auto old = expr->Between(base, std::min(now, edge),
                             catch_up ? static_cast<std::size_t>(std::max(1, d.catch_up_max)) : 1,
                             &skipped);
    if (!old.empty()) newest = old.back();
    missed += skipped;
    if (catch_up) {
      slots = std::move(old);
    } else {
      missed += static_cast<std::int64_t>(old.size());
    }
  }
  std::int64_t dropped = 0;
  const auto own_slots = expr->Between(std::max(base, edge), now, kMaxSlotsPerRound, &dropped);
  missed += dropped;
  if (!own_slots.empty()) newest = own_slots.back();
  slots.insert(slots.end(), own_slots.begin(), own_slots.end());
  if (!newest) return expr->Next(std::max(base, now)).value_or(TimePoint::max());

  std::vector<std::string> keys;
  std::map<std::string, TimePoint> slot_of;
  for (const auto& t : slots) {
    keys.push_back("schedule:" + d.name + ":" + IsoUtc(t));
    slot_of[keys.back()] = t;
  }
  const auto next = expr->Next(std::max(*newest, now));
  const FireResult fired =
      store_.Fire(conn, d.name, record->last_fired_ms, Ms(*newest), MsOf(next), keys);
  if (!fired.advanced) return now;  // another node fired first: read the row again at once
  if (missed > 0) {
    report_->Emit("schedule.missed", [&](TelemetryEvent& e) {
      e.measurements["count"] = static_cast<double>(missed);
      e.metadata["name"] = d.name;
      e.metadata["until"] = IsoUtc(*newest);
    });
    spdlog::info("schedule {}: {} slot(s) passed while no node ran it ({})", d.name, missed,
                 catch_up ? "older than the catch-up limit" : "skipped");
  }
  const TimePoint after = std::chrono::system_clock::now();
  for (const auto& inserted : fired.inserted) {
    const std::int64_t id = inserted.first;  // (not a structured binding: the lambda uses it)
    const TimePoint slot = slot_of[inserted.second];
    report_->Emit("schedule.fired", [&](TelemetryEvent& e) {
      e.measurements["lag_ms"] =
          static_cast<double>(std::chrono::duration_cast<milliseconds>(after - slot).count());
      e.metadata["name"] = d.name;
      e.metadata["slot"] = IsoUtc(slot);
      e.metadata["id"] = id;
    });
  }
  return next.value_or(TimePoint::max());
}

}  // namespace gen_durable::detail
