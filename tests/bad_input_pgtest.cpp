// Bad input and faults against a real Postgres (docs/reliability.md, "Bad input"): rows written
// behind the engine's back, outcomes the database cannot store, bad CLI input, a database that goes
// away, a flusher whose connection is killed mid-commit, and a node whose clock is hours off. Each
// case checks that the error is clear and that nothing is lost: every instance still exists, and
// ends terminal with its error recorded, or runs once the cause is gone.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "gen_durable/embedded/embedded.hpp"
#include "support/child_process.hpp"
#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

using Clock = std::chrono::steady_clock;

struct Counter {
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Counter, n)

class BadInput : public EngineTest {
 protected:
  std::string Str(const std::string& q) { return sql_->Exec(q).String(0, 0); }
  // Rows neither terminal nor waiting for anything: must be none once work has settled.
  std::int64_t Executing() {
    return Sql64("SELECT count(*) FROM gd_instances WHERE status = 'executing'");
  }
};

// Options for the child processes here: a process group of their own, because a wrapper
// (faketime) runs the CLI as its child, and a signal must reach that child too, or it outlives
// the test.
ChildOptions InOwnGroup(std::vector<std::string> set_env = {}) {
  ChildOptions options;
  options.set_env = std::move(set_env);
  options.own_process_group = true;
  return options;
}

// A private cluster in a temp dir, for tests that stop and restart the server (the shared one
// must never be stopped: other tests run on it).
class PrivateCluster {
 public:
  PrivateCluster() {
    char dir[] = "/tmp/gd_bi_pg_XXXXXX";
    if (mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = dir;
    chmod(dir, 0755);
    if (geteuid() == 0) {
      if (passwd* pw = getpwnam("postgres"); pw != nullptr) {
        if (chown(dir, pw->pw_uid, pw->pw_gid) != 0) throw std::runtime_error("chown failed");
      }
    }
    detail::EmbeddedOptions o;
    o.data_dir = dir_ + "/pgdata";
    o.fast_unsafe = true;
    cluster_ = detail::EmbeddedCluster::Start(o);
    cluster_->CreateDatabase("bad_input");
  }
  ~PrivateCluster() {
    try {
      cluster_->Stop();
    } catch (...) {
    }
    cluster_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string db() const { return cluster_->ConnInfo("bad_input"); }
  detail::EmbeddedCluster& operator*() { return *cluster_; }
  detail::EmbeddedCluster* operator->() { return cluster_.get(); }

 private:
  std::string dir_;
  std::unique_ptr<detail::EmbeddedCluster> cluster_;
};

// --- rows written behind the engine's back ---

TEST_F(BadInput, WrongTypedStoredStateFailsTheInstanceNotTheNode) {
  auto m = Machine<Counter>("t.typed")
               .Step("start",
                     [](StepContext<Counter>& c) {
                       return Done({{"n", c.state().n}});
                     })
               .Build();
  auto j = Job<Counter>("t.typed_job")
               .Perform([](const Counter& a, JobContext&) {
                 return JobResult::Ok({{"n", a.n}});
               })
               .Build();
  // jsonb holds only valid JSON, so what plain SQL can store wrongly is JSON of the wrong type.
  const std::vector<std::string> bad_states = {
      R"('"a string"')",     "'[1, 2]'", "'null'", "'42'", R"('{"n": "seven"}')",
      R"('{"n": {"x": 1}}')"};
  std::vector<std::int64_t> bad;
  for (const auto& state : bad_states) {
    for (const AnyMachine& machine : {AnyMachine(m), AnyMachine(j)}) {
      auto id = *client_->Insert(machine);
      sql_->Exec("UPDATE gd_instances SET state = " + state + " WHERE id = " + std::to_string(id));
      bad.push_back(id);
    }
  }
  auto engine = Engine::Start(Options({m, j}));
  std::vector<std::int64_t> good;
  for (int i = 0; i < 10; ++i) {
    InsertOptions o;
    o.state = {{"n", i}};
    good.push_back(*client_->Insert(i % 2 ? AnyMachine(m) : AnyMachine(j), o));
  }
  for (auto id : bad) {
    auto info = WaitTerminal(id);
    EXPECT_EQ(info.status, "failed") << id;
    ASSERT_TRUE(info.last_error.has_value()) << id;
    EXPECT_NE(info.last_error->find("state decode failed"), std::string::npos) << *info.last_error;
    EXPECT_EQ(info.attempt, 0) << "an undecodable state is not retried";
  }
  for (std::size_t i = 0; i < good.size(); ++i) {
    auto info = WaitTerminal(good[i]);
    EXPECT_EQ(info.status, "done");
    EXPECT_EQ(info.result, (Json{{"n", static_cast<int>(i)}}));
  }
  EXPECT_TRUE(engine->running());
  EXPECT_EQ(Executing(), 0);
}

TEST_F(BadInput, UnknownStepWrittenIntoARowFailsAMachineWithAClearError) {
  auto m = Machine<Counter>("t.steps")
               .Step("start", [](StepContext<Counter>& c) { return Next("end", c.state()); })
               .Step("end", [](StepContext<Counter>&) { return Done(); })
               .Build();
  auto j = Job<Counter>("t.steps_job")
               .Perform([](const Counter&, JobContext&) { return JobResult::Ok(); })
               .Build();
  auto ghost_step = *client_->Insert(m, Counter{});
  auto ghost_job = *client_->Insert(j, Counter{});
  sql_->Exec("UPDATE gd_instances SET step = 'vanished' WHERE id IN (" +
             std::to_string(ghost_step) + ", " + std::to_string(ghost_job) + ")");
  auto engine = Engine::Start(Options({m, j}));
  auto good = *client_->Insert(m, Counter{});
  auto info = WaitTerminal(ghost_step);
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.last_error->find("unknown step 'vanished' for machine 't.steps' version 1 "
                                  "(known steps: start, end)"),
            std::string::npos)
      << *info.last_error;
  // A job has one step, whatever the row calls it: a job inserted by name from a process that
  // does not know it is stored with the default step "start" and must still run.
  EXPECT_EQ(WaitTerminal(ghost_job).status, "done");
  EXPECT_EQ(WaitTerminal(good).status, "done");
  EXPECT_TRUE(engine->running());
}

TEST_F(BadInput, RowsOfUnknownMachinesOrVersionsWaitForANodeThatHasThem) {
  auto v1 = Machine<Counter>("t.ver")
                .Step("start",
                      [](StepContext<Counter>&) {
                        return Done({{"version", 1}});
                      })
                .Build();
  auto v7 = Machine<Counter>("t.ver")
                .Version(7)
                .Step("start",
                      [](StepContext<Counter>&) {
                        return Done({{"version", 7}});
                      })
                .Build();
  auto other = Machine<Counter>("t.other")
                   .Step("start",
                         [](StepContext<Counter>&) {
                           return Done({{"other", true}});
                         })
                   .Build();
  auto newer = *client_->Insert(v7, Counter{});
  auto foreign = *client_->Insert(other, Counter{});
  auto engine = Engine::Start(Options({v1}));
  auto mine = *client_->Insert(v1, Counter{});
  EXPECT_EQ(WaitTerminal(mine).result, (Json{{"version", 1}}));
  // Give the engine a few more polls: it must leave both rows alone, untouched.
  std::this_thread::sleep_for(500ms);
  for (auto id : {newer, foreign}) {
    auto info = client_->Get(id);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->status, "runnable");
    EXPECT_EQ(info->attempt, 0);
    EXPECT_FALSE(info->locked_by.has_value());
  }
  EXPECT_EQ(engine->stats().claimed, 1);
  // A node that has them runs them.
  auto o = Options({v7, other});
  auto second = Engine::Start(o);
  EXPECT_EQ(WaitTerminal(newer).result, (Json{{"version", 7}}));
  EXPECT_EQ(WaitTerminal(foreign).result, (Json{{"other", true}}));
  EXPECT_EQ(client_->Get(newer)->fsm_version, 7);
}

TEST_F(BadInput, AnAwaitOnANameNoSignalCanCarryFailsTheInstance) {
  auto m = Machine<Json>("t.await_name")
               .Step("start",
                     [](StepContext<Json>& c) {
                       return Await({c.state().at("name").get<std::string>()}, c.state());
                     })
               .Build();
  auto engine = Engine::Start(Options({m}));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "await: signal name must not be empty"},
      {std::string(256, 'n'), "over the limit of 255 bytes"},
      {"line\nbreak", "control character"}};
  for (const auto& [name, mentions] : cases) {
    InsertOptions o;
    o.state = {{"name", name}};
    auto info = WaitTerminal(*client_->Insert(m, o));
    EXPECT_EQ(info.status, "failed");
    ASSERT_TRUE(info.last_error.has_value());
    EXPECT_NE(info.last_error->find(mentions), std::string::npos) << *info.last_error;
  }
  // The longest name a signal may carry still parks and wakes.
  InsertOptions o;
  o.state = {{"name", std::string(255, 'n')}};
  auto id = *client_->Insert(m, o);
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(id)->status == "awaiting_signal"; }));
}

// --- payloads ---

TEST_F(BadInput, OversizedResultFailsTheInstanceNamingTheLimit) {
  auto j = Job<Json>("t.big_result")
               .Perform([](const Json&, JobContext&) {
                 return JobResult::Ok({{"blob", std::string(5000, 'x')}});
               })
               .Build();
  auto m = Machine<Json>("t.big_done")
               .Step("start",
                     [](StepContext<Json>&) {
                       return Done({{"blob", std::string(5000, 'x')}});
                     })
               .Build();
  auto o = Options({j, m});
  o.max_payload_bytes = 1000;
  auto engine = Engine::Start(o);
  for (auto id : {*client_->Insert(j), *client_->Insert(m)}) {
    auto info = WaitTerminal(id);
    EXPECT_EQ(info.status, "failed");
    EXPECT_TRUE(info.result.is_null());
    EXPECT_NE(info.last_error->find("over max_payload_bytes (1000)"), std::string::npos)
        << *info.last_error;
  }
  // The engine's client applies the same limit at insert.
  InsertOptions big;
  big.state = Json{{"blob", std::string(5000, 'x')}};
  EXPECT_THROW((void)engine->client().Insert(m, big), InvalidArgument);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances"), 2);
}

TEST_F(BadInput, AnOutcomeTheDatabaseCannotStoreFailsOnlyItsInstance) {
  // jsonb refuses the NUL character (\u0000), which a C++ string may hold: the commit of such a
  // state fails on the server, after the step ran.
  auto m = Machine<Json>("t.nul")
               .Step("start",
                     [](StepContext<Json>& c) {
                       if (c.state().value("poison", false)) {
                         return Next("end", Json{{"s", std::string("a\0b", 3)}});
                       }
                       std::this_thread::sleep_for(20ms);  // commit alongside the poison
                       return Next("end", c.state());
                     })
               .Step("end",
                     [](StepContext<Json>&) {
                       return Done({{"ok", true}});
                     })
               .Build();
  auto o = Options({m}, 8);
  o.inline_next = false;
  auto engine = Engine::Start(o);
  std::vector<InsertRequest> reqs(16, InsertRequest{"t.nul", 1, {}});
  reqs[3].options.state = Json{{"poison", true}};
  auto ids = client_->InsertAll(reqs);
  ASSERT_EQ(ids.size(), 16u);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto info = WaitTerminal(ids[i]);
    if (i == 3) {
      EXPECT_EQ(info.status, "failed");
      EXPECT_NE(info.last_error->find("outcome could not be stored"), std::string::npos)
          << *info.last_error;
    } else {
      EXPECT_EQ(info.status, "done") << info.last_error.value_or("");
      EXPECT_EQ(info.result, (Json{{"ok", true}}));
    }
  }
  EXPECT_TRUE(engine->running());
  EXPECT_EQ(Executing(), 0);
}

TEST_F(BadInput, AnOutcomeTheDatabaseCannotStoreClearsTheInbox) {
  // The refused outcome becomes a failure, which ends the instance: its inbox goes with it in
  // the same statement, the signals the step was shown and one that came while it ran alike
  // (as for any terminal outcome), rather than the shown ones alone.
  static std::atomic<bool> running{false};
  static std::atomic<bool> signalled{false};
  running = false;
  signalled = false;
  auto m = Machine<Json>("t.nul_inbox")
               .Step("start",
                     [](StepContext<Json>& c) {
                       if (c.signals().empty()) return Await({"go"}, c.state());
                       running = true;
                       for (int i = 0; i < 200 && !signalled; ++i) {
                         std::this_thread::sleep_for(10ms);
                       }
                       return Next("end", Json{{"s", std::string("a\0b", 3)}});
                     })
               .Step("end", [](StepContext<Json>&) { return Done(); })
               .Build();
  auto engine = Engine::Start(Options({m}));
  const auto id = *client_->Insert(m);
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(id)->status == "awaiting_signal"; }, 10s));
  ASSERT_TRUE(client_->Signal(id, "go").ok());
  ASSERT_TRUE(WaitUntil([&] { return running.load(); }, 10s));
  ASSERT_TRUE(client_->Signal(id, "late").ok());
  signalled = true;
  auto info = WaitTerminal(id, 10s);
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.last_error.value_or("").find("outcome could not be stored"), std::string::npos)
      << info.last_error.value_or("");
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_signals WHERE instance_id = " + std::to_string(id) +
                  " AND consumed_at IS NULL"),
            0);
}

// --- the CLI ---

TEST_F(BadInput, CliRefusesBadNamesKeysAndStatesWithExitTwo) {
  const std::string q64(64, 'q');
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"insert", "demo.sleep", "--state", R"({"ms": "soon"})"},
       "state does not fit machine 'demo.sleep' version 1"},
      {{"insert", "demo.flaky", "--state", R"({"fail_times": [1]})"},
       "state does not fit machine 'demo.flaky'"},
      {{"insert", std::string(256, 'm')}, "over the limit of 255 bytes"},
      {{"insert", "caf\xc3"}, "machine name is not valid UTF-8"},
      {{"insert", "demo.noop", "--queue", q64}, "over the limit of 63 bytes"},
      {{"insert", "demo.noop", "--queue", "a\tb"}, "queue contains a control character"},
      {{"insert", "demo.noop", "--unique-key", std::string(2049, 'k')},
       "over the limit of 2048 bytes"},
      {{"insert", "demo.noop", "--partition-key", std::string(3000, 'p')},
       "over the limit of 2048 bytes"},
      {{"insert", "demo.noop", "--rate-limit", std::string(256, 'r')},
       "over the limit of 255 bytes"},
      {{"signal", "1", std::string(256, 'n')}, "over the limit of 255 bytes"},
      {{"signal", std::string(2049, 'k'), "paid"}, "over the limit of 2048 bytes"},
      {{"signal", "1", "paid", "--dedup-key", ""}, "dedup_key must not be empty"},
  };
  for (const auto& [args, mentions] : cases) {
    std::vector<std::string> argv = {CliPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--database", db_});
    ChildProcess p(argv, InOwnGroup());
    ASSERT_TRUE(p.Wait(60s));
    SCOPED_TRACE(args[0] + " " + args[1].substr(0, 20));
    EXPECT_EQ(p.exit_code(), 2) << p.err();
    EXPECT_EQ(p.out(), "");
    const std::string err = p.err();
    EXPECT_EQ(err.rfind("gen_durable: ", 0), 0u) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_NE(err.find(mentions), std::string::npos) << err;
    EXPECT_LT(err.size(), 400u);
  }
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances"), 0);
}

// --- the database goes away ---

TEST_F(BadInput, InsertsWhileTheDatabaseIsDownFailRetryablyAndLeaveNothingHalfDone) {
  PrivateCluster pg;
  ClientOptions co;
  co.database = pg.db() + " connect_timeout=5";
  auto client = Client::Connect(co);
  client->Migrate();
  ASSERT_TRUE(client->Insert("t.any").ok());  // the pool now holds a live connection
  pg->Stop();
  std::vector<InsertRequest> batch(50, InsertRequest{"t.any", std::nullopt, {}});
  for (int i = 0; i < 3; ++i) {
    // The pooled connection finds the server gone; later calls cannot connect at all.
    try {
      (void)client->Insert("t.any");
      ADD_FAILURE() << "insert succeeded with the database down";
    } catch (const DatabaseError& e) {
      EXPECT_EQ(e.retry(), Retry::kRetryable) << e.what();
    }
    try {
      (void)client->InsertAll(batch);
      ADD_FAILURE() << "batch insert succeeded with the database down";
    } catch (const DatabaseError& e) {
      EXPECT_EQ(e.retry(), Retry::kRetryable) << e.what();
    }
    try {
      (void)client->Signal(1, "paid");
      ADD_FAILURE() << "signal succeeded with the database down";
    } catch (const DatabaseError& e) {
      EXPECT_EQ(e.retry(), Retry::kRetryable) << e.what();
    }
  }
  pg->Restart();
  // A caller that retries what was retryable gets through once the server is back.
  std::optional<std::vector<std::int64_t>> ids;
  for (int attempt = 0; attempt < 5 && !ids; ++attempt) {
    try {
      ids = client->InsertAll(batch);
    } catch (const Error& e) {
      ASSERT_TRUE(e.retryable()) << e.what();
    }
  }
  ASSERT_TRUE(ids.has_value());
  EXPECT_EQ(ids->size(), 50u);
  // Exactly the two successful calls' rows: nothing of the refused ones.
  auto sql = detail::pg::Connection::Open(pg.db(), "bad_input");
  EXPECT_EQ(sql->Exec("SELECT count(*) FROM gd_instances").Int64(0, 0), 51);
}

TEST_F(BadInput, AnEngineWhoseDatabaseGoesAwayRetriesAndResumes) {
  PrivateCluster pg;
  auto m = Machine<Counter>("t.outage")
               .Step("start",
                     [](StepContext<Counter>& c) {
                       std::this_thread::sleep_for(5ms);
                       Counter s{c.state().n + 1};
                       if (s.n >= 5) return Done({{"n", s.n}});
                       return Next("start", s).Inline(false);
                     })
               .Build();
  auto o = Options({m});
  o.database = pg.db();
  ClientOptions co;
  co.database = pg.db();
  auto client = Client::Connect(co);
  client->Migrate();
  auto engine = Engine::Start(o);
  std::vector<InsertRequest> reqs(100, InsertRequest{"t.outage", 1, {}});
  auto before = client->InsertAll(reqs);
  auto sql = detail::pg::Connection::Open(pg.db(), "bad_input");
  ASSERT_TRUE(WaitUntil([&] {
    return sql->Exec("SELECT count(*) FROM gd_instances WHERE status = 'done'").Int64(0, 0) > 0;
  }));
  pg->Stop();  // mid-work: claims, steps and commits are in flight
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(engine->running());
  pg->Restart();
  std::vector<std::int64_t> after;
  ASSERT_TRUE(WaitUntil([&] {
    try {
      after = client->InsertAll(reqs);
      return true;
    } catch (const Error& e) {
      if (!e.retryable()) throw;
      return false;
    }
  }));
  sql = detail::pg::Connection::Open(pg.db(), "bad_input");
  ASSERT_TRUE(WaitUntil(
      [&] {
        return sql->Exec("SELECT count(*) FROM gd_instances WHERE status = 'done'").Int64(0, 0) ==
               200;
      },
      60s));
  auto r = sql->Exec("SELECT count(*) FROM gd_instances WHERE result = '{\"n\": 5}'");
  EXPECT_EQ(r.Int64(0, 0), 200);
  EXPECT_EQ(sql->Exec("SELECT count(*) FROM gd_instances WHERE status = 'executing'").Int64(0, 0),
            0);
  EXPECT_TRUE(engine->running());
}

TEST_F(BadInput, AKilledFlusherConnectionMidCommitLosesNoOutcome) {
  auto m = Machine<Counter>("t.flushkill")
               .Step("start",
                     [](StepContext<Counter>& c) {
                       Counter s{c.state().n + 1};
                       if (s.n >= 10) return Done({{"n", s.n}});
                       return Next("start", s);
                     })
               .Build();
  auto o = Options({m}, 8);
  o.inline_next = false;  // every step's outcome goes through a group commit
  auto engine = Engine::Start(o);
  std::vector<InsertRequest> reqs(150, InsertRequest{"t.flushkill", 1, {}});
  auto ids = client_->InsertAll(reqs);
  // The flusher's backend while it runs a statement (a commit is in flight), of this test's
  // engine in this test's database only: the cluster is shared.
  const std::string kill =
      "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity "
      "WHERE application_name = 'gen_durable:" +
      o.name +
      ":flusher' AND state = 'active' "
      "AND datname = current_database() AND pid <> pg_backend_pid()) k WHERE t";
  int kills = 0;
  const auto until = Clock::now() + 60s;
  while (kills < 20 && Clock::now() < until) {
    // Keep commits coming until enough of them were cut.
    if (Sql64("SELECT count(*) FROM gd_instances WHERE status <> 'done'") < 50) {
      auto more = client_->InsertAll(reqs);
      ids.insert(ids.end(), more.begin(), more.end());
    }
    const auto killed = Sql64(kill);
    kills += static_cast<int>(killed);
    // After a hit, let the flusher reconnect and commit some batches before the next one.
    std::this_thread::sleep_for(killed > 0 ? 100ms : 2ms);
  }
  EXPECT_EQ(kills, 20);
  for (auto id : ids) {
    auto info = WaitTerminal(id, 60s);
    EXPECT_EQ(info.status, "done");
    EXPECT_EQ(info.result, (Json{{"n", 10}}));
  }
  EXPECT_EQ(Executing(), 0);
  EXPECT_TRUE(engine->running());
}

// --- a node whose clock is hours off ---

// How far the clock of the process that ran a demo.sleep step was from the database's, in
// hours, rounded: -3, 0 or 3.
std::map<int, int> SleepRunsBySkew(detail::pg::Connection& sql) {
  auto r = sql.Exec(
      "SELECT round(((result->>'start_us')::float8 / 1e6 - extract(epoch FROM completed_at)) "
      "/ 3600)::int FROM gd_instances WHERE fsm = 'demo.sleep' AND status = 'done'");
  std::map<int, int> out;
  for (int i = 0; i < r.rows(); ++i) out[r.Int(i, 0)] += 1;
  return out;
}

TEST_F(BadInput, NodesWithSkewedClocksRunNothingEarlyAndReapNoLeaseEarlyOrLate) {
  if (system("command -v faketime >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "faketime is not installed (scripts/deps installs it)";
  }
  // faketime preloads a library, which a sanitizer build's runtime refuses to follow ("ASan
  // runtime does not come first"): there the skewed workers could not even start.
  const std::string probe = "faketime -f '+3h' '" + CliPath() + "' --help >/dev/null 2>&1";
  if (system(probe.c_str()) != 0) {
    GTEST_SKIP() << "the CLI does not run under faketime here (a sanitizer build?)";
  }
  const std::vector<std::string> timings = {
      "--database",      db_,   "--lease-ttl",     "4000", "--heartbeat-interval", "1000",
      "--reap-interval", "300", "--poll-interval", "100",  "--gc-interval",        "0"};
  auto worker = [&](std::optional<std::string> skew, const std::string& queues) {
    std::vector<std::string> argv;
    if (skew) argv = {"faketime", "-f", *skew};
    argv.push_back(CliPath());
    argv.insert(argv.end(), {"worker", "--queues", queues});
    argv.insert(argv.end(), timings.begin(), timings.end());
    // The offset applies to the wall clock only; the steady clock measures intervals either way.
    return std::make_unique<ChildProcess>(argv, InOwnGroup({"FAKETIME_DONT_FAKE_MONOTONIC=1"}));
  };
  auto ahead = worker("+3h", "default:4,skew:1");
  auto behind = worker("-3h", "default:4");
  auto normal = worker(std::nullopt, "default:4");

  // Phase 1: scheduled work, retried work, and steps that hold their lease across many reaper
  // sweeps of every node.
  std::vector<InsertRequest> reqs;
  for (int i = 0; i < 12; ++i) {
    InsertRequest r{"demo.sleep", std::nullopt, {}};
    r.options.state = {{"ms", 50}};
    r.options.schedule_in = 3000ms;
    reqs.push_back(r);
  }
  for (int i = 0; i < 24; ++i) {
    InsertRequest r{"demo.sleep", std::nullopt, {}};
    r.options.state = {{"ms", 2500}};  // > 8 reaper sweeps, < the lease (4 s)
    reqs.push_back(r);
  }
  for (int i = 0; i < 12; ++i) {
    InsertRequest r{"demo.flaky", std::nullopt, {}};
    r.options.state = {{"fail_times", 2}};
    reqs.push_back(r);
  }
  // The machines are registered in the CLI, not here: insert by name with their defaults.
  for (auto& r : reqs) {
    r.options.step = "perform";
    r.options.max_attempts = 5;
  }
  auto ids = client_->InsertAll(reqs);
  ASSERT_EQ(ids.size(), reqs.size());
  for (auto id : ids) {
    auto info = WaitTerminal(id, 90s);
    EXPECT_EQ(info.status, "done") << id << ": " << info.last_error.value_or("");
  }
  // Nothing scheduled ran before it was due by the database's clock.
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE fsm = 'demo.sleep' "
                  "AND state->>'ms' = '50' AND completed_at < inserted_at + interval '3 s'"),
            0);
  // No lease was reaped under a running step, by any node.
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE fsm = 'demo.sleep' AND attempt > 0"), 0);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE fsm = 'demo.flaky' "
                  "AND result = '{\"attempts\": 3}' AND attempt = 2"),
            12);
  // The skew was real, and the skewed nodes did their share.
  auto by_skew = SleepRunsBySkew(*sql_);
  EXPECT_GT(by_skew[3], 0) << "the node 3 h ahead ran no step";
  EXPECT_GT(by_skew[-3], 0) << "the node 3 h behind ran no step";
  EXPECT_EQ(by_skew[3] + by_skew[0] + by_skew[-3], 36);

  // Phase 2: a lease held by the node 3 h ahead expires on time. Only the node behind is left
  // to reap it (the normal one drains and exits); the step kills the node ahead.
  normal->Signal(SIGTERM);
  ASSERT_TRUE(normal->Wait(30s));
  InsertOptions crash_options;
  crash_options.step = "perform";
  crash_options.queue = "skew";
  crash_options.max_attempts = 5;
  auto crash = *client_->Insert("demo.crash", crash_options);
  ASSERT_TRUE(ahead->Wait(30s)) << "demo.crash did not run on the node ahead";
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(crash)->attempt == 1; }, 30s))
      << "the lease of the dead node was not reaped: " << client_->Get(crash)->status;
  EXPECT_EQ(client_->Get(crash)->status, "runnable");
  auto finisher = worker(std::nullopt, "skew:1");
  auto info = WaitTerminal(crash, 30s);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"attempts", 2}}));
  EXPECT_EQ(Executing(), 0);
}

}  // namespace
}  // namespace gen_durable::testing
