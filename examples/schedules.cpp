// Guide example: periodic schedules. The snippets of docs/guides/schedules.md come from this
// file.
//
//   example_schedules                        validates the schedules, then exits
//   example_schedules DATABASE_URL [SECONDS] runs them on an engine and prints each fire
#include <chrono>
#include <cstdlib>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <string>
#include <thread>

namespace gd = gen_durable;

// --- the jobs the schedules insert ---

struct Report {
  std::string kind = "daily";
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Report, kind)

const auto kReport = gd::Job<Report>("reports.build")
                         .Perform([](const Report& r, gd::JobContext&) {
                           std::cout << "building the " << r.kind << " report\n";
                           return gd::JobResult::Ok();
                         })
                         .Register();

const auto kHeartbeat =
    gd::Job<gd::Json>("ops.heartbeat")
        .Perform([](const gd::Json&, gd::JobContext&) { return gd::JobResult::Ok(); })
        .Register();

// --- the schedules ---

void AddSchedules(gd::EngineOptions& opts) {
  // Every weekday at 07:30 in Berlin (CET or CEST, whichever is in force).
  gd::Schedule daily;
  daily.name = "daily-report";
  daily.cron = "30 7 * * mon-fri";
  daily.time_zone = "Europe/Berlin";
  daily.fsm = "reports.build";
  daily.state = {{"kind", "daily"}};
  daily.queue = "reports";

  // Every 10 seconds; after an outage, the three newest missed slots still run.
  gd::Schedule heartbeat;
  heartbeat.name = "heartbeat";
  heartbeat.cron = "@every 10s";
  heartbeat.fsm = "ops.heartbeat";
  heartbeat.missed = gd::Schedule::Missed::kCatchUp;
  heartbeat.catch_up_max = 3;

  opts.schedules = {daily, heartbeat};
}

// --- reporting ---

void ReportFires(const gd::TelemetryEvent& e) {
  if (e.name == "schedule.fired") {
    std::cout << e.metadata["name"] << " fired slot " << e.metadata["slot"] << " as #"
              << e.metadata["id"] << " (" << e.measurements.at("lag_ms") << " ms late)\n";
  } else if (e.name == "schedule.missed") {
    std::cout << e.metadata["name"] << " missed " << e.measurements.at("count") << " slots\n";
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cout << "usage: example_schedules DATABASE_URL [SECONDS]\n";
    gd::EngineOptions opts;
    opts.database = "postgresql:///app";
    opts.queues = {{"default", {4}}, {"reports", {1}}};
    AddSchedules(opts);
    opts.schedules[0].cron = "30 7 * * mon-fry";
    try {
      gd::Engine::Create(opts);
    } catch (const gd::ConfigError& e) {
      std::cout << "refused as expected: " << e.what() << "\n";
    }
    return 0;
  }
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 25;

  gd::EngineOptions opts;
  opts.database = argv[1];
  opts.queues = {{"default", {4}}, {"reports", {1}}};
  AddSchedules(opts);
  auto engine = gd::Engine::Create(opts);
  engine->telemetry().Attach("schedule.", ReportFires);
  engine->Start();

  // Where each schedule stands, as `gen_durable schedules` shows it.
  for (const gd::ScheduleInfo& s : engine->client().Schedules()) {
    std::cout << s.name << " (" << s.cron << ", " << s.time_zone << "): next fire "
              << s.next_fire.value_or("-") << "\n";
  }
  // A run now, outside the slots (`gen_durable schedules trigger daily-report`).
  auto id = engine->client().TriggerSchedule("daily-report");
  std::cout << "triggered #" << (id ? *id : 0) << "\n";

  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  engine->Stop();
  return 0;
}
