// The web dashboard: its JSON API over HTTP, and a real headless chromium clicking through it
// (tests/browser/dashboard.mjs) against a dashboard embedded in an engine on a real database.
#include <gtest/gtest.h>
#include <httplib.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "gen_durable/dashboard.hpp"
#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

namespace fs = std::filesystem;

AnyMachine Checkout() {
  return Machine<Json>("ui.checkout")
      .Step("start",
            [](StepContext<Json>& c) {
              AwaitOptions o;
              o.next_step = "ship";
              return Await({"payment_confirmed"}, c.state(), o);
            })
      .Step("ship",
            [](StepContext<Json>& c) {
              return Done({{"shipped", c.state()}});
            })
      .Build();
}

AnyMachine Failing() {
  return Job<Json>("ui.fail")
      .MaxAttempts(1)
      .Perform([](const Json&, JobContext&) { return JobResult::Error("card declined"); })
      .Build();
}

AnyMachine Child() {
  return Job<Json>("ui.child")
      .Perform([](const Json&, JobContext&) { return JobResult::Ok({}); })
      .Build();
}

AnyMachine Parent() {
  return Machine<Json>("ui.parent")
      .Step("start",
            [](StepContext<Json>& c) {
              std::vector<InsertRequest> kids(3, InsertRequest{"ui.child", {}, {}});
              return ScheduleChildren("join", kids, c.state());
            })
      .Step("join",
            [](StepContext<Json>&) {
              return Done({{"joined", 3}});
            })
      .Build();
}

// Awaits two children that each await a signal: a tree to cancel with cascade.
AnyMachine Holder() {
  return Machine<Json>("ui.holder")
      .Step("start",
            [](StepContext<Json>& c) {
              std::vector<InsertRequest> kids(2, InsertRequest{"ui.checkout", {}, {}});
              return ScheduleChildren("join", kids, c.state());
            })
      .Step("join", [](StepContext<Json>&) { return Done({}); })
      .Build();
}

class DashboardTest : public EngineTest {
 protected:
  void StartAll(const DashboardOptions& options = {}) {
    auto o = Options({Checkout(), Failing(), Child(), Parent(), Holder()});
    o.history = true;
    // Shown on the overview; it fires on 29 February only, never during a test run.
    Schedule leap;
    leap.name = "leap";
    leap.cron = "0 0 29 2 *";
    leap.fsm = "ui.fail";
    o.schedules = {leap};
    engine_ = Engine::Start(o);
    dashboard_ = Dashboard::Start(*engine_, options);
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(dashboard_->port()) + "/"; }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Dashboard> dashboard_;
};

TEST_F(DashboardTest, ApiServesQueuesInstancesAndRefusesBadRequests) {
  StartAll();
  auto parked = client_->Insert("ui.checkout", {});
  ASSERT_TRUE(parked.ok());
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(*parked)->status == "awaiting_signal"; }));
  httplib::Client http("127.0.0.1", dashboard_->port());

  auto page = http.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("assets/app.js"), std::string::npos);
  EXPECT_EQ(http.Get("/assets/app.js")->status, 200);
  EXPECT_EQ(http.Get("/assets/nope.js")->status, 404);

  auto overview = http.Get("/api/overview");
  ASSERT_EQ(overview->status, 200);
  const Json o = Json::parse(overview->body);
  EXPECT_EQ(o["local"]["node"], engine_->node_id());
  EXPECT_EQ(o["nodes"].size(), 1u);
  EXPECT_EQ(o["queues"][0]["counts"]["awaiting_signal"], 1);
  ASSERT_EQ(o["schedules"].size(), 1u) << o.dump();
  EXPECT_EQ(o["schedules"][0]["name"], "leap");
  EXPECT_EQ(o["schedules"][0]["cron"], "0 0 29 2 *");
  const std::string next_fire = o["schedules"][0]["next_fire"];
  EXPECT_NE(next_fire.find("-02-29T00:00:00Z"), std::string::npos) << next_fire;

  auto one = http.Get("/api/instances/" + std::to_string(*parked));
  ASSERT_EQ(one->status, 200);
  EXPECT_EQ(Json::parse(one->body)["instance"]["status"], "awaiting_signal");
  EXPECT_EQ(http.Get("/api/instances/999999")->status, 404);
  auto list = http.Get("/api/instances?status=awaiting_signal&fsm=ui.checkout");
  ASSERT_EQ(list->status, 200);
  EXPECT_EQ(Json::parse(list->body)["instances"].size(), 1u);

  // Actions: JSON bodies only; domain refusals are 409.
  const std::string cancel = "/api/instances/" + std::to_string(*parked) + "/cancel";
  EXPECT_EQ(http.Post(cancel, "cascade=1", "application/x-www-form-urlencoded")->status, 415);
  EXPECT_EQ(client_->Get(*parked)->status, "awaiting_signal");
  EXPECT_EQ(http.Post(cancel, "[1]", "application/json")->status, 400);
  auto ok = http.Post(cancel, R"({"reason": "from the test"})", "application/json");
  ASSERT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(client_->Get(*parked)->last_error, "from the test");
  EXPECT_EQ(http.Post(cancel, "{}", "application/json")->status, 409);
  const std::string signal = "/api/instances/" + std::to_string(*parked) + "/signal";
  EXPECT_EQ(http.Post(signal, "{}", "application/json")->status, 400);
  EXPECT_EQ(http.Post(signal, R"({"name": "x"})", "application/json")->status, 409);

  // Malformed input is 400 with a JSON error; actions take POST only.
  for (const char* bad : {"/api/instances/abc", "/api/instances/0", "/api/instances/-3",
                          "/api/instances?before=x", "/api/instances?limit=0"}) {
    auto r = http.Get(bad);
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_TRUE(Json::parse(r->body).contains("error")) << bad << ": " << r->body;
  }
  auto bad_retry = http.Post("/api/instances/abc/retry", "{}", "application/json");
  EXPECT_EQ(bad_retry->status, 400);
  EXPECT_EQ(Json::parse(bad_retry->body)["error"], "'abc' is not an instance id");
  EXPECT_EQ(http.Post(signal, "{not json", "application/json")->status, 400);
  auto get_action = http.Get("/api/queues/default/pause");
  EXPECT_EQ(get_action->status, 405);
  EXPECT_EQ(get_action->get_header_value("Allow"), "POST");
  EXPECT_EQ(http.Delete(cancel)->status, 405);
  EXPECT_FALSE(client_->Queues().at(0).paused);
  EXPECT_EQ(http.Get("/api/nothing")->status, 404);
}

// Chromium and the npm package are installed by scripts/deps and scripts/test; a developer
// machine without them skips, CI (CI=true) fails.
bool BrowserAvailable(std::string& why) {
  const fs::path modules =
      fs::path(GEN_DURABLE_TESTS_DIR) / "browser" / "node_modules" / "playwright-core";
  if (std::system("command -v node >/dev/null 2>&1") != 0) {
    why = "node is not installed";
  } else if (!fs::exists("/usr/bin/chromium")) {
    why = "chromium is not installed (apt-get install chromium)";
  } else if (!fs::exists(modules)) {
    why = "tests/browser/node_modules is missing (npm ci in tests/browser)";
  } else {
    return true;
  }
  return false;
}

TEST_F(DashboardTest, HeadlessChromiumClicksThroughQueuesSearchAndInstancePages) {
  std::string why;
  if (!BrowserAvailable(why)) {
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true") FAIL() << why;
    GTEST_SKIP() << why;
  }
  // The browser holds credentials (basic auth with the token as password).
  const std::string token = "browser-test-token-0123456789";
  DashboardOptions authenticated;
  authenticated.security.token = token;
  StartAll(authenticated);
  DashboardOptions viewer = authenticated;
  viewer.security.read_only = true;
  auto read_only = Dashboard::Start(*engine_, viewer);
  auto with_state = [](Json state) {
    InsertOptions o;
    o.state = std::move(state);
    return o;
  };
  auto parked = client_->Insert("ui.checkout", with_state({{"order", 1}}));
  auto signalled = client_->Insert("ui.checkout", with_state({{"order", 2}}));
  auto failed = client_->Insert("ui.fail", {});
  auto parent = client_->Insert("ui.parent", with_state({{"batch", 7}}));
  auto holder = client_->Insert("ui.holder", {});
  auto stray = client_->Insert("ui.checkout", with_state({{"order", 3}}));
  ASSERT_TRUE(parked.ok() && signalled.ok() && failed.ok() && parent.ok() && holder.ok() &&
              stray.ok());
  ASSERT_TRUE(WaitUntil([&] {
    const auto h = client_->Get(*holder);
    if (h->status != "awaiting_children" || h->children.size() != 2) return false;
    for (auto child : h->children) {
      if (client_->Get(child)->status != "awaiting_signal") return false;
    }
    return client_->Get(*parked)->status == "awaiting_signal" &&
           client_->Get(*signalled)->status == "awaiting_signal" &&
           client_->Get(*stray)->status == "awaiting_signal" &&
           client_->Get(*failed)->status == "failed" && client_->Get(*parent)->status == "done";
  }));

  // The token goes through the environment, not the command line.
  std::string cmd =
      "cd '" + std::string(GEN_DURABLE_TESTS_DIR) + "/browser' && " +
      "GEN_DURABLE_DASHBOARD_TOKEN='" + token + "' timeout 120 node " + "dashboard.mjs '" + Url() +
      "' --parked " + std::to_string(*parked) + " --signalled " + std::to_string(*signalled) +
      " --failed " + std::to_string(*failed) + " --parent " + std::to_string(*parent) +
      " --holder " + std::to_string(*holder) + " --stray " + std::to_string(*stray) +
      " --read-only-url 'http://127.0.0.1:" + std::to_string(read_only->port()) + "/'";
  if (const char* dir = std::getenv("GEN_DURABLE_SCREENSHOTS"))
    cmd += " --screenshots '" + std::string(dir) + "'";
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int status = pclose(p);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;

  // What the clicks did, read back from the database.
  EXPECT_EQ(client_->Get(*parked)->status, "cancelled");
  EXPECT_EQ(client_->Get(*stray)->last_error, "cancelled by the browser test");
  const auto held = client_->Get(*holder);
  EXPECT_EQ(held->status, "cancelled");
  ASSERT_EQ(held->children.size(), 2u);
  for (auto child : held->children) {
    EXPECT_EQ(client_->Get(child)->status, "cancelled") << child;
  }
  EXPECT_TRUE(WaitUntil([&] { return client_->Get(*signalled)->status == "done"; })) << out;
  EXPECT_EQ(client_->Get(*signalled)->result, (Json{{"shipped", {{"order", 2}}}}));
  auto history = client_->History(*failed);
  EXPECT_TRUE(std::any_of(history.begin(), history.end(),
                          [](const HistoryEntry& h) { return h.event == "retry"; }));
  for (const auto& q : client_->Queues()) EXPECT_FALSE(q.paused) << q.name;
}

}  // namespace
}  // namespace gen_durable::testing
