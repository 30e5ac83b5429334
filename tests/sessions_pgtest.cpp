// The settings of the engine's and the client's sessions: pinned over database and role
// defaults (isolation, commit durability), bounded statements, network timeouts.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <latch>
#include <map>
#include <mutex>
#include <set>

#include "gen_durable/embedded/embedded.hpp"
#include "gen_durable/store/session.hpp"
#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

using detail::pg::Connection;

// What one session showed right after it was opened.
struct Shown {
  std::string isolation;
  std::string synchronous_commit;
  std::string statement_timeout;
  std::string time_zone;
  std::map<std::string, std::string> libpq;  // keyword -> value in effect on the client side
};

// Records every session the engine or a client opens, by application_name.
class SessionRecorder {
 public:
  SessionRecorder() {
    detail::SetSessionOpenedHookForTesting([this](Connection& c, const std::string& app) {
      Shown s;
      s.isolation = c.Exec("SHOW transaction_isolation").String(0, 0);
      s.synchronous_commit = c.Exec("SHOW synchronous_commit").String(0, 0);
      s.statement_timeout = c.Exec("SHOW statement_timeout").String(0, 0);
      s.time_zone = c.Exec("SHOW TimeZone").String(0, 0);
      PQconninfoOption* opts = PQconninfo(c.raw());
      for (PQconninfoOption* o = opts; o != nullptr && o->keyword != nullptr; ++o) {
        if (o->val != nullptr) s.libpq[o->keyword] = o->val;
      }
      PQconninfoFree(opts);
      std::lock_guard lock(mu_);
      seen_[app] = std::move(s);
    });
  }
  ~SessionRecorder() { detail::SetSessionOpenedHookForTesting(nullptr); }
  SessionRecorder(const SessionRecorder&) = delete;
  SessionRecorder& operator=(const SessionRecorder&) = delete;

  std::map<std::string, Shown> Seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, Shown> seen_;
};

class SessionsTest : public EngineTest {
 protected:
  // Defaults an operator may set on the database, which would break the engine if it followed
  // them: each statement of a transaction must see what committed before it, and an outcome
  // must be durable once its commit returned.
  void SetHostileDatabaseDefaults() {
    const std::string db = sql_->Exec("SELECT current_database()").String(0, 0);
    sql_->Exec("ALTER DATABASE " + detail::pg::QuoteIdent(db) +
               " SET default_transaction_isolation = 'repeatable read'");
    sql_->Exec("ALTER DATABASE " + detail::pg::QuoteIdent(db) + " SET synchronous_commit = off");
    // A fresh session follows them (the ones opened so far do not).
    auto probe = Connection::Open(db_, "probe");
    ASSERT_EQ(probe->Exec("SHOW transaction_isolation").String(0, 0), "repeatable read");
    ASSERT_EQ(probe->Exec("SHOW synchronous_commit").String(0, 0), "off");
  }

  // True while a backend of `application_name` waits for a row lock (queried from `sql_`).
  bool WaitsForLock(const std::string& application_name) {
    auto r = sql_->ExecParams(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
        "AND wait_event_type = 'Lock'",
        detail::pg::Params().Add(application_name));
    return r.Int64(0, 0) > 0;
  }
};

TEST_F(SessionsTest, EverySessionPinsReadCommittedAndDurableCommitsOverDatabaseDefaults) {
  SetHostileDatabaseDefaults();
  SessionRecorder recorder;
  auto m = Machine<Json>("sess.pinned")
               .Step("start", [](StepContext<Json>& c) { return Done(c.state()); })
               .Build();
  EngineOptions o = Options({m});
  o.lease_ttl = 20'000ms;
  o.heartbeat_interval = 1'000ms;
  auto engine = Engine::Start(o);
  ClientOptions co;
  co.database = db_;
  auto client = Client::Connect(co);
  auto id = *client->Insert(m);
  EXPECT_EQ(WaitTerminal(id).status, "done");

  const std::string prefix = "gen_durable:" + o.name + ":";
  const std::vector<std::string> roles = {"control",  "flusher",        "heartbeat",
                                          "listener", "feeder:default", "maintenance"};
  ASSERT_TRUE(WaitUntil([&] {
    auto seen = recorder.Seen();
    for (const auto& r : roles) {
      if (!seen.count(prefix + r)) return false;
    }
    return seen.count("gen_durable:client") > 0;
  })) << "not every session was opened";
  auto seen = recorder.Seen();
  for (auto& [app, s] : seen) {
    SCOPED_TRACE(app);
    EXPECT_EQ(s.isolation, "read committed");
    EXPECT_EQ(s.synchronous_commit, "on");
    EXPECT_EQ(s.time_zone, "UTC");
    if (app.starts_with(prefix)) {
      // The engine's default: lease_ttl.
      EXPECT_EQ(s.statement_timeout, "20s");
      // Client side: keepalives and tcp_user_timeout from half the lease_ttl (10 s).
      EXPECT_EQ(s.libpq["keepalives"], "1");
      EXPECT_EQ(s.libpq["keepalives_idle"], "3");
      EXPECT_EQ(s.libpq["keepalives_interval"], "1");
      EXPECT_EQ(s.libpq["keepalives_count"], "3");
      EXPECT_EQ(s.libpq["tcp_user_timeout"], "10000");
      EXPECT_NE(s.libpq["options"].find("-c tcp_user_timeout=10000"), std::string::npos)
          << s.libpq["options"];
    }
  }
  // A plain client sets no statement timeout of its own (its callers may rightly run long
  // statements); the engine's own client shares the engine's.
  client.reset();
  ClientOptions plain;
  plain.database = db_;
  auto fresh = Client::Connect(plain);
  (void)fresh->Get(id);
  EXPECT_EQ(recorder.Seen()["gen_durable:client"].statement_timeout, "0");
}

TEST_F(SessionsTest, AStrongerSynchronousCommitOfTheOperatorIsKept) {
  const std::string db = sql_->Exec("SELECT current_database()").String(0, 0);
  sql_->Exec("ALTER DATABASE " + detail::pg::QuoteIdent(db) +
             " SET synchronous_commit = remote_apply");
  SessionRecorder recorder;
  ClientOptions co;
  co.database = db_;
  co.statement_timeout = 1'500ms;
  co.network_timeout = 0ms;
  auto client = Client::Connect(co);
  (void)client->Get(1);
  auto s = recorder.Seen()["gen_durable:client"];
  EXPECT_EQ(s.synchronous_commit, "remote_apply");
  EXPECT_EQ(s.statement_timeout, "1500ms");
  EXPECT_EQ(s.libpq.count("keepalives_idle"), 0u);  // 0: the system's defaults
}

// The park re-check (gd_wake_parked) runs in the park's transaction after its row lock was
// granted. A signal that committed while the park waited for that lock must be seen there: the
// signal saw the step still running, so it woke nothing. Under a repeatable-read default the
// re-check used the snapshot of the park's first statement, taken before the signal committed,
// and the instance stayed parked with the signal in its inbox.
TEST_F(SessionsTest, ASignalCommittedWhileAParkWaitsForItsRowWakesItUnderRepeatableRead) {
  SetHostileDatabaseDefaults();
  std::latch running(1);
  std::latch release(1);
  std::atomic<int> runs{0};
  auto m = Machine<Json>("sess.park")
               .Step("start",
                     [&](StepContext<Json>& c) {
                       if (c.FindSignal("go")) return Done({{"woken", true}});
                       if (++runs == 1) {
                         running.count_down();
                         release.wait();
                       }
                       return Await({"go"}, c.state());
                     })
               .Build();
  EngineOptions o = Options({m});
  o.lease_ttl = 20'000ms;
  o.heartbeat_interval = 1'000ms;
  auto engine = Engine::Start(o);
  auto id = *client_->Insert(m);
  running.wait();

  // The signal's transaction: it locks the row, finds the step running (nothing to wake) and
  // stays open while the park's commit queues behind its lock.
  auto signaller = Connection::Open(db_, "signaller");
  signaller->Exec("BEGIN ISOLATION LEVEL READ COMMITTED");
  signaller->ExecParams("SELECT gd_signal($1, NULL, 'go')", detail::pg::Params().Add(id));
  release.count_down();
  const std::string flusher = "gen_durable:" + o.name + ":flusher";
  ASSERT_TRUE(WaitUntil([&] { return WaitsForLock(flusher); }))
      << "the park's commit never waited for the signal's row lock";
  signaller->Exec("COMMIT");

  auto info = WaitTerminal(id, 15s);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"woken", true}}));
}

// A statement blocked behind a lock held by another session ends at the engine's statement
// timeout with a retryable error; the engine tries again, and once the lock is gone the outcome
// commits as returned (a cancelled statement is not a refused outcome).
TEST_F(SessionsTest, AStatementBlockedPastTheTimeoutIsRetriedAndTheEngineCarriesOn) {
  std::latch running(1);
  std::latch release(1);
  std::atomic<int> runs{0};
  auto m = Machine<Json>("sess.blocked")
               .Step("start",
                     [&](StepContext<Json>& c) {
                       if (++runs == 1) {
                         running.count_down();
                         release.wait();
                       }
                       return Done(c.state());
                     })
               .Build();
  EngineOptions o = Options({m});
  o.lease_ttl = 30'000ms;
  o.heartbeat_interval = 1'000ms;
  o.statement_timeout = 1'000ms;
  auto engine = Engine::Start(o);
  InsertOptions io;
  io.state = {{"n", 7}};
  auto id = *client_->Insert(m, io);
  running.wait();

  auto holder = Connection::Open(db_, "holder");
  holder->Exec("BEGIN");
  holder->ExecParams("SELECT id FROM gd_instances WHERE id = $1 FOR UPDATE",
                     detail::pg::Params().Add(id));
  release.count_down();
  // The flusher's commit waits for the lock, is cancelled, and is sent again: seen as two
  // lock waits of its session that started at different times.
  const std::string flusher = "gen_durable:" + o.name + ":flusher";
  std::set<std::string> waits;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = sql_->ExecParams(
            "SELECT query_start::text FROM pg_stat_activity WHERE application_name = $1 "
            "AND wait_event_type = 'Lock'",
            detail::pg::Params().Add(flusher));
        for (int i = 0; i < r.rows(); ++i) waits.insert(r.String(i, 0));
        return waits.size() >= 2;
      },
      30s))
      << "the blocked commit was not cancelled and retried; lock waits seen: " << waits.size();
  EXPECT_EQ(client_->Get(id)->status, "executing");
  holder->Exec("ROLLBACK");

  auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"n", 7}}));
  EXPECT_EQ(runs.load(), 1);
}

TEST(SessionLimits, DefaultsFollowTheLeaseAndKeywordsOfTheConnectionStringWin) {
  EngineOptions o;
  o.lease_ttl = 60'000ms;
  auto l = detail::EngineSessionLimits(o);
  EXPECT_EQ(l.statement_timeout, 60'000ms);
  EXPECT_EQ(l.network_timeout, 30'000ms);
  o.lease_ttl = 1'000ms;  // floors: a busy server's brief stall is no reason to cancel
  l = detail::EngineSessionLimits(o);
  EXPECT_EQ(l.statement_timeout, 5'000ms);
  EXPECT_EQ(l.network_timeout, 2'000ms);
  o.statement_timeout = 0ms;
  o.network_timeout = 9'000ms;
  l = detail::EngineSessionLimits(o);
  EXPECT_EQ(l.statement_timeout, 0ms);
  EXPECT_EQ(l.network_timeout, 9'000ms);

  auto params =
      detail::SessionParams("host=db.invalid keepalives_idle=7 options='-c work_mem=64MB'", l);
  std::map<std::string, std::string> kv(params.begin(), params.end());
  EXPECT_EQ(kv.count("keepalives_idle"), 0u);  // the connection string's 7 stands
  EXPECT_EQ(kv["keepalives_interval"], "1");
  EXPECT_EQ(kv["tcp_user_timeout"], "9000");
  EXPECT_TRUE(kv["options"].starts_with("-c work_mem=64MB -c default_transaction_isolation="))
      << kv["options"];
  EXPECT_NE(kv["options"].find("-c statement_timeout=0"), std::string::npos);
  EXPECT_NE(kv["options"].find("-c tcp_keepalives_idle=3"), std::string::npos);
}

int SocketOption(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof(value);
  if (getsockopt(fd, level, name, &value, &len) != 0) return -1;
  return value;
}

// Over TCP (the shared test cluster has only a Unix socket, where the server reads these
// settings as 0): the server's side shows the keepalive and user-timeout settings, and the
// client's socket carries its own.
TEST(SessionsTcp, KeepalivesAndUserTimeoutAreInEffectOnBothEnds) {
  char dir_template[] = "/tmp/gd_tcp_XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  chmod(dir.c_str(), 0755);
  if (geteuid() == 0) {
    if (passwd* pw = getpwnam("postgres"); pw != nullptr) {
      ASSERT_EQ(chown(dir.c_str(), pw->pw_uid, pw->pw_gid), 0);
    }
  }
  int port = 0;
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    close(fd);
  }
  {
    detail::EmbeddedOptions eo;
    eo.data_dir = dir + "/pgdata";
    eo.port = port;
    eo.fast_unsafe = true;
    auto cluster = detail::EmbeddedCluster::Start(eo);
    {
      auto admin = Connection::Open(cluster->ConnInfo());
      admin->Exec("ALTER SYSTEM SET listen_addresses = '127.0.0.1'");
    }
    cluster->Stop();
    cluster->Restart();

    const std::string tcp =
        "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres dbname=postgres";
    detail::SessionLimits limits;
    limits.statement_timeout = 7'000ms;
    limits.network_timeout = 9'000ms;
    auto c = detail::OpenSession(tcp, "tcp-test", limits);
    EXPECT_EQ(c->Exec("SHOW tcp_keepalives_idle").String(0, 0), "3");
    EXPECT_EQ(c->Exec("SHOW tcp_keepalives_interval").String(0, 0), "1");
    EXPECT_EQ(c->Exec("SHOW tcp_keepalives_count").String(0, 0), "3");
    EXPECT_EQ(c->Exec("SHOW tcp_user_timeout").String(0, 0), "9000");
    EXPECT_EQ(c->Exec("SHOW statement_timeout").String(0, 0), "7s");
    EXPECT_EQ(c->Exec("SHOW transaction_isolation").String(0, 0), "read committed");
    const int fd = PQsocket(c->raw());
    EXPECT_EQ(SocketOption(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    EXPECT_EQ(SocketOption(fd, IPPROTO_TCP, TCP_KEEPIDLE), 3);
    EXPECT_EQ(SocketOption(fd, IPPROTO_TCP, TCP_KEEPINTVL), 1);
    EXPECT_EQ(SocketOption(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
    EXPECT_EQ(SocketOption(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 9000);
    c.reset();
    cluster->Stop(detail::EmbeddedCluster::StopMode::kImmediate);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace gen_durable::testing
