// Guide example: durable timers. The snippets of the "Durable timers" section of
// docs/guides/machines.md come from this file.
//
//   example_guide_timers                  lists the machine, then exits
//   example_guide_timers DATABASE_URL     runs one trial through an engine (schema guide_timers)
#include <chrono>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <string>

namespace gd = gen_durable;
using namespace std::chrono_literals;

struct Trial {
  std::string user;
  std::int64_t remind_after_ms = 0;  // a week in production; short in this example
  std::int64_t ends_at_ms = 0;       // the end of the trial, in ms since the epoch
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Trial, user, remind_after_ms, ends_at_ms)

void Mail(const std::string& user, const std::string& what) {
  std::cout << "mail to " << user << ": " << what << "\n";
}

// A trial: a welcome mail now, a reminder some time later, the end of the trial at a fixed
// time. While it waits, the instance is `scheduled`: it holds no worker, survives restarts of
// every node, and any node serving its queue runs the next step when the time comes.
const auto kTrial =
    gd::Machine<Trial>("guide.trial")
        .Step("start",
              [](gd::StepContext<Trial>& ctx) {
                Mail(ctx.state().user, "welcome");
                const gd::Millis wait{ctx.state().remind_after_ms};
                return gd::Next("remind", ctx.state()).After(wait);  // a delay
              })
        .Step(
            "remind",
            [](gd::StepContext<Trial>& ctx) {
              Mail(ctx.state().user, "your trial ends soon");
              const std::chrono::system_clock::time_point ends{gd::Millis{ctx.state().ends_at_ms}};
              return gd::Next("end", ctx.state()).At(ends);  // a wall-clock time
            })
        .Step("end",
              [](gd::StepContext<Trial>& ctx) {
                Mail(ctx.state().user, "your trial has ended");
                // attempt is 0 in every step: waiting is not a retry
                return gd::Done({{"user", ctx.state().user}, {"attempt", ctx.attempt()}});
              })
        .Register();

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cout << "usage: example_guide_timers DATABASE_URL\nmachines: " << kTrial.name() << "\n";
    return 0;
  }
  gd::EngineOptions opts;
  opts.database = argv[1];
  opts.schema = "guide_timers";
  auto engine = gd::Engine::Create(opts);
  engine->Start();

  const auto now = std::chrono::system_clock::now();
  Trial trial{"ada@example.com", 500, 0};
  trial.ends_at_ms =
      std::chrono::duration_cast<gd::Millis>((now + 1500ms).time_since_epoch()).count();
  // Woken as the last step commits (at most a minute here).
  const gd::Result<gd::InstanceInfo> ended =
      engine->client().InsertAndWait(kTrial, trial, std::chrono::minutes(1));
  if (!ended) {
    std::cerr << ended.error().message << "\n";
    return 1;
  }
  const gd::InstanceInfo& info = *ended;
  std::cout << info.status << " " << info.result.dump() << "\n";
  return info.status == "done" ? 0 : 1;
}
