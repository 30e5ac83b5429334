// The machines a benchmark run drives (see bench_machines.hpp).
#include "bench_machines.hpp"  // bench/driver/

#include <mutex>
#include <vector>

#include "bench_shared.hpp"  // bench/driver/

namespace gen_durable::benchmark {

// The machines the scenarios run. Steps do no work of their own: the figures are the engine's.
void RegisterBenchMachines() {
  static std::once_flag once;
  std::call_once(once, [] {
    Job<Json>("bench.noop")
        .Queue(kQueue)
        .Perform([](const Json&, JobContext&) {
          Finished();
          return JobResult::Ok();
        })
        .Register();
    // {t}: records the time from t (set just before its insert) to the start of its step.
    Job<Json>("bench.latency")
        .Queue(kQueue)
        .Perform([](const Json& args, JobContext&) {
          Record(args.at("t").get<std::int64_t>());
          Finished();
          return JobResult::Ok();
        })
        .Register();
    Machine<tools::ChainState>("bench.chain")
        .Queue(kQueue)
        .Step("start",
              [](StepContext<tools::ChainState>& ctx) {
                tools::ChainState s = ctx.state();
                if (++s.ran >= s.steps) {
                  Finished();
                  return Done();
                }
                return Next("start", s);
              })
        .Register();
    // Parks until `go`, whose payload {t} is when it was sent; records t -> resumed step.
    Machine<Json>("bench.signal")
        .Queue(kQueue)
        .Step("start",
              [](StepContext<Json>& ctx) {
                const Signal* go = ctx.FindSignal("go");
                if (go == nullptr) return Await({"go"}, ctx.state());
                Record(go->payload.at("t").get<std::int64_t>());
                Finished();
                return Done();
              })
        .Register();
    Machine<FanoutState>("bench.fanout")
        .Queue(kQueue)
        .Step("start",
              [](StepContext<FanoutState>& ctx) {
                std::vector<InsertRequest> children(static_cast<std::size_t>(ctx.state().n),
                                                    InsertRequest{"bench.child", {}, {}});
                return ScheduleChildren("join", std::move(children), ctx.state());
              })
        .Step("join",
              [](StepContext<FanoutState>& ctx) {
                Finished();
                return Done({{"children", ctx.children().size()}});
              })
        .Register();
    Job<Json>("bench.child")
        .Queue(kQueue)
        .Perform([](const Json&, JobContext&) { return JobResult::Ok(); })
        .Register();
    // soak: {t} as bench.latency, into the histogram the parent reads while the run goes on.
    Job<Json>("bench.soak_job")
        .Queue(kQueue)
        .Perform([](const Json& args, JobContext&) {
          shared().soak_latency.Add(NowMicros() - args.at("t").get<std::int64_t>());
          Finished();
          return JobResult::Ok();
        })
        .Register();
    // soak: parks until `go` (sent right after the insert, so it may arrive before the park).
    Machine<Json>("bench.soak_wait")
        .Queue(kQueue)
        .Step("start",
              [](StepContext<Json>& ctx) {
                if (ctx.FindSignal("go") == nullptr) return Await({"go"}, ctx.state());
                Finished();
                return Done();
              })
        .Register();
  });
}

}  // namespace gen_durable::benchmark
