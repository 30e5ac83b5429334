// Unit tests of option validation, machine definitions, outcomes, backoff and telemetry.
#include <gtest/gtest.h>

#include "gen_durable/gen_durable.hpp"

namespace gen_durable {
namespace {

using namespace std::chrono_literals;

EngineOptions Valid() {
  EngineOptions o;
  o.database = "host=/nonexistent dbname=x";  // Create() validates without connecting
  return o;
}

void ExpectRefused(EngineOptions o, const std::string& mentions) {
  try {
    Engine::Create(o);
    ADD_FAILURE() << "accepted options that mention " << mentions;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(mentions), std::string::npos) << e.what();
    EXPECT_EQ(e.retry(), Retry::kFatal);
  }
}

TEST(EngineOptions, DefaultsMatchTheSpec) {
  EngineOptions o;
  EXPECT_EQ(o.name, "gen_durable");
  EXPECT_EQ(o.schema, "public");
  ASSERT_EQ(o.queues.size(), 1u);
  EXPECT_EQ(o.queues.at("default").concurrency, 10);
  EXPECT_EQ(o.lease_ttl, 60'000ms);
  EXPECT_EQ(o.heartbeat_interval, 20'000ms);
  EXPECT_EQ(o.poll_interval, 1'000ms);
  EXPECT_EQ(o.reap_interval, 30'000ms);
  EXPECT_EQ(o.gc_interval, 60'000ms);
  EXPECT_EQ(o.gc_retention, 86'400'000ms);
  EXPECT_EQ(o.gc_batch, 10'000);
  EXPECT_EQ(o.prefetch, 0);
  EXPECT_EQ(o.min_demand, 1);
  EXPECT_EQ(o.max_poll_interval, 5'000ms);
  EXPECT_EQ(o.drain_timeout, 5'000ms);
  EXPECT_TRUE(o.reaper);
  EXPECT_TRUE(o.gc);
  EXPECT_FALSE(o.history);
  EXPECT_EQ(o.autoscale_interval, 1'000ms);
  EXPECT_EQ(o.autoscale_cooldown, 5'000ms);
  EXPECT_NO_THROW(Engine::Create(Valid()));
}

TEST(EngineOptions, BadValuesAreRefusedNamingTheOption) {
  auto o = Valid();
  o.database.clear();
  ExpectRefused(o, "database");
  o = Valid();
  o.queues = {{"default", QueueConfig{-1}}};
  ExpectRefused(o, "concurrency");
  o = Valid();
  o.queues = {{"default", QueueConfig{4, 4}}};  // autoscaling needs max above min
  ExpectRefused(o, "max of 'default'");
  o = Valid();
  o.queues = {{"default", QueueConfig{1, 20'000}}};
  ExpectRefused(o, "max of 'default'");
  o = Valid();
  o.queues = {{"default", QueueConfig{4, 0, 0}}};  // a cluster-wide limit of nothing
  ExpectRefused(o, "global_limit of 'default'");
  o.queues = {{"default", QueueConfig{4, 0, -3}}};
  ExpectRefused(o, "global_limit of 'default'");
  o = Valid();
  o.autoscale_interval = 0ms;
  ExpectRefused(o, "autoscale_interval");
  o = Valid();
  o.history_retention = 0ms;
  ExpectRefused(o, "history_retention");
  o = Valid();
  o.queues.clear();
  ExpectRefused(o, "queues");
  o = Valid();
  o.queues = {{"", QueueConfig{1}}};
  ExpectRefused(o, "queue name");
  o = Valid();
  o.lease_ttl = 0ms;
  ExpectRefused(o, "lease_ttl");
  o = Valid();
  o.statement_timeout = -1ms;
  ExpectRefused(o, "statement_timeout");
  o = Valid();
  o.network_timeout = Millis{3'000'000'000LL};
  ExpectRefused(o, "network_timeout");
  o = Valid();
  o.heartbeat_interval = o.lease_ttl;
  ExpectRefused(o, "heartbeat_interval");
  o = Valid();
  o.poll_interval = -5ms;
  ExpectRefused(o, "poll_interval");
  o = Valid();
  o.max_poll_interval = 10ms;
  ExpectRefused(o, "max_poll_interval");
  o = Valid();
  o.gc_batch = 0;
  ExpectRefused(o, "gc_batch");
  o = Valid();
  o.prefetch = -1;
  ExpectRefused(o, "prefetch");
  o = Valid();
  o.min_demand = 0;
  ExpectRefused(o, "min_demand");
  o = Valid();
  o.drain_timeout = -1ms;
  ExpectRefused(o, "drain_timeout");
  o = Valid();
  o.schema = "";
  ExpectRefused(o, "schema");
  o = Valid();
  o.gc_interval = 0ms;
  ExpectRefused(o, "gc_interval");
  o = Valid();
  o.queues = {{"default", QueueConfig{2}}};
  o.min_demand = 3;
  ExpectRefused(o, "min_demand");
}

TEST(EngineOptions, RiskyHeartbeatIsAcceptedWithAWarning) {
  auto o = Valid();
  o.lease_ttl = 1000ms;
  o.heartbeat_interval = 500ms;  // x3 > lease_ttl: legal, warned about
  EXPECT_NO_THROW(Engine::Create(o));
  o.gc_interval.reset();  // GC off is legal
  EXPECT_NO_THROW(Engine::Create(o));
}

TEST(Machines, DefinitionsAreValidated) {
  EXPECT_THROW(Machine<Json>("").Step("start", [](StepContext<Json>&) { return Done(); }).Build(),
               ConfigError);
  EXPECT_THROW(Machine<Json>("no.steps").Build(), ConfigError);
  EXPECT_THROW(
      Machine<Json>("bad.initial").Step("other", [](StepContext<Json>&) { return Done(); }).Build(),
      ConfigError);
  EXPECT_THROW(Machine<Json>("bad.version")
                   .Version(0)
                   .Step("start", [](StepContext<Json>&) { return Done(); })
                   .Build(),
               ConfigError);
  EXPECT_THROW(Job<Json>("no.perform").Build(), ConfigError);
  auto m = Machine<Json>("ok")
               .Queue("q")
               .Initial("a")
               .Step("a", [](StepContext<Json>&) { return Done(); })
               .Build();
  EXPECT_EQ(m.def().queue, "q");
  EXPECT_EQ(m.def().initial_step, "a");
  EXPECT_FALSE(m.def().is_job);
  auto j =
      Job<Json>("ok.job").Perform([](const Json&, JobContext&) { return JobResult::Ok(); }).Build();
  EXPECT_TRUE(j.def().is_job);
  EXPECT_EQ(j.def().max_attempts, 20);
}

TEST(Machines, RegistryRefusesDuplicatesAndFindsVersions) {
  auto v1 = Machine<Json>("registry.m")
                .Step("start", [](StepContext<Json>&) { return Done(); })
                .Register();
  auto v3 = Machine<Json>("registry.m")
                .Version(3)
                .Step("start", [](StepContext<Json>&) { return Done(); })
                .Register();
  EXPECT_THROW(Machine<Json>("registry.m")
                   .Step("start", [](StepContext<Json>&) { return Done(); })
                   .Register(),
               ConfigError);
  EXPECT_EQ(FindRegistered("registry.m", 1)->version(), 1);
  EXPECT_EQ(FindRegisteredLatest("registry.m")->version(), 3);
  EXPECT_FALSE(FindRegistered("registry.m", 2).has_value());
  EXPECT_FALSE(FindRegisteredLatest("registry.none").has_value());
}

TEST(Outcomes, CarryTheirFields) {
  auto next = Next("ship", Json{{"x", 1}}).Inline(false);
  EXPECT_EQ(next.kind(), OutcomeKind::kNext);
  EXPECT_EQ(next.step(), "ship");
  EXPECT_EQ(next.state(), (Json{{"x", 1}}));
  EXPECT_EQ(next.inline_next(), false);
  auto replay = Replay(Json::object(), -5ms);
  EXPECT_EQ(replay.delay(), 0ms);  // a negative delay is clamped
  EXPECT_EQ(Done({{"r", 1}}).result(), (Json{{"r", 1}}));
  EXPECT_EQ(Stop("why").reason(), "why");
  EXPECT_STREQ(OutcomeKindName(OutcomeKind::kReplay), "replay");
}

TEST(Backoff, DefaultIsCappedExponentialWithJitter) {
  for (int attempt = 0; attempt < 12; ++attempt) {
    const double base = std::min(1000.0 * (1 << attempt), 300'000.0);
    for (int i = 0; i < 50; ++i) {
      const auto d = DefaultBackoff(attempt).count();
      EXPECT_GE(d, static_cast<std::int64_t>(base * 0.75) - 1) << attempt;
      EXPECT_LE(d, static_cast<std::int64_t>(std::min(base * 1.25, 300'000.0))) << attempt;
    }
  }
  EXPECT_LE(DefaultBackoff(1000).count(), 300'000);
  EXPECT_GE(DefaultBackoff(-3).count(), 750);
}

TEST(Telemetry, PrefixMatchingAttachAndDetach) {
  Telemetry t;
  int steps = 0, all = 0;
  EXPECT_FALSE(t.Wants("step.stop"));
  auto a = t.Attach("step.", [&](const TelemetryEvent&) { ++steps; });
  t.Attach("", [&](const TelemetryEvent&) { ++all; });
  t.Attach("pick.", [&](const TelemetryEvent&) { throw std::runtime_error("ignored"); });
  EXPECT_TRUE(t.Wants("step.stop"));
  t.Emit({"step.stop", {}, {}});
  t.Emit({"pick.stop", {}, {}});  // a throwing handler does not escape
  EXPECT_EQ(steps, 1);
  EXPECT_EQ(all, 2);
  t.Detach(a);
  t.Emit({"step.stop", {}, {}});
  EXPECT_EQ(steps, 1);
  EXPECT_EQ(all, 3);
}

TEST(Errors, ResultHoldsAValueOrADomainError) {
  Result<int> ok = 5;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 5);
  Result<int> dup = DomainError{ErrorCode::kDuplicate, "exists"};
  EXPECT_FALSE(dup);
  EXPECT_EQ(dup.code(), ErrorCode::kDuplicate);
  EXPECT_STREQ(ErrorCodeName(ErrorCode::kNoTarget), "no_target");
  EXPECT_STREQ(ErrorCodeName(ErrorCode::kTimeout), "timeout");
}

}  // namespace
}  // namespace gen_durable
