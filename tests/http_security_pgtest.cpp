// The dashboard's and the metrics endpoint's defences, tried from outside over real sockets:
// Host allow-list, security headers, body and header limits, generic 500s, credentials,
// read-only access, origin and CSRF checks, the refusal of an unauthenticated public bind,
// connection limits and TLS. See docs/security.md.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gen_durable/dashboard.hpp"
#include "gen_durable/metrics.hpp"
#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A raw TCP connection to 127.0.0.1:port, for requests no HTTP client library would send.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }

  // Sends everything; false once the peer closed or reset the connection.
  bool Send(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }

  // Reads until the blank line after the status line and headers (or EOF, or `timeout`).
  std::string ReadHead(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = Clock::now() + timeout;
    while (received_.find("\r\n\r\n") == std::string::npos && Clock::now() < deadline) {
      if (!ReadSome(deadline)) break;
    }
    return received_;
  }

  // True when the peer closed the connection (EOF or reset) before `timeout`.
  bool ClosedWithin(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, 100);
      if (r <= 0) continue;
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return true;
      received_.append(buf, static_cast<std::size_t>(n));
    }
    return false;
  }

  static int StatusOf(const std::string& head) {
    if (head.rfind("HTTP/1.", 0) != 0 || head.size() < 12) return 0;
    return std::atoi(head.c_str() + 9);
  }

 private:
  bool ReadSome(Clock::time_point deadline) {
    pollfd p{fd_, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))) <= 0) {
      return false;
    }
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    received_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string received_;
};

void ExpectSecurityHeaders(const httplib::Result& r, const std::string& what) {
  ASSERT_TRUE(r) << what;
  EXPECT_EQ(r->get_header_value("X-Frame-Options"), "DENY") << what;
  EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff") << what;
  EXPECT_EQ(r->get_header_value("Referrer-Policy"), "no-referrer") << what;
  const std::string csp = r->get_header_value("Content-Security-Policy");
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << what << ": " << csp;
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << what << ": " << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << what << ": " << csp;
  EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << what << ": " << csp;
}

class HttpSecurityTest : public EngineTest {
 protected:
  void StartDashboard(const DashboardOptions& o = {}) {
    dashboard_ = Dashboard::Start(*client_, o);
  }
  int port() const { return dashboard_->port(); }
  bool Paused() { return client_->Queues().empty() ? false : client_->Queues().at(0).paused; }
  std::unique_ptr<Dashboard> dashboard_;
};

TEST_F(HttpSecurityTest, ForeignHostIsRefused) {
  ASSERT_TRUE(client_->Insert("anything", {}).ok());
  StartDashboard();
  httplib::Client http("127.0.0.1", port());
  const httplib::Headers evil = {{"Host", "evil.example:" + std::to_string(port())}};
  auto page = http.Get("/", evil);
  ASSERT_TRUE(page);
  EXPECT_GE(page->status, 400);
  EXPECT_LT(page->status, 500);
  auto api = http.Get("/api/overview", evil);
  ASSERT_TRUE(api);
  EXPECT_GE(api->status, 400);
  EXPECT_LT(api->status, 500);
  EXPECT_EQ(api->body.find("queues"), std::string::npos) << api->body;
  auto pause = http.Post("/api/queues/default/pause", evil, "{}", "application/json");
  ASSERT_TRUE(pause);
  EXPECT_GE(pause->status, 400);
  EXPECT_LT(pause->status, 500);
  EXPECT_FALSE(Paused());
  // The names of this host are served.
  for (const std::string host : {"127.0.0.1", "localhost", "LOCALHOST"}) {
    auto ok = http.Get("/api/overview", {{"Host", host + ":" + std::to_string(port())}});
    ASSERT_TRUE(ok) << host;
    EXPECT_EQ(ok->status, 200) << host;
  }
}

TEST_F(HttpSecurityTest, EveryResponseCarriesTheSecurityHeaders) {
  StartDashboard();
  httplib::Client http("127.0.0.1", port());
  for (const char* path :
       {"/", "/index.html", "/assets/app.js", "/assets/style.css", "/assets/nope.js",
        "/api/overview", "/api/instances", "/api/instances/abc", "/api/instances/999999",
        "/api/nothing", "/api/queues/default/pause"}) {
    ExpectSecurityHeaders(http.Get(path), path);
  }
  ExpectSecurityHeaders(http.Post("/api/instances/abc/retry", "{}", "application/json"),
                        "POST retry abc");
  ExpectSecurityHeaders(http.Get("/", {{"Host", "evil.example"}}), "foreign host");
  // The page itself has no inline script or style (the policy would block them).
  auto page = http.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->body.find("<script>"), std::string::npos);
  EXPECT_EQ(page->body.find("style="), std::string::npos);
  EXPECT_EQ(page->body.find("<style"), std::string::npos);
}

TEST_F(HttpSecurityTest, FiftyMegabyteBodyIsRefusedWith413BeforeItIsRead) {
  StartDashboard();
  // Only the head is sent: the answer must come without waiting for 50 MB.
  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(
      c.Send("POST /api/queues/default/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n{}"));
  const std::string head = c.ReadHead();
  EXPECT_EQ(RawConnection::StatusOf(head), 413) << head;
  EXPECT_TRUE(c.ClosedWithin(std::chrono::seconds(20)));
  EXPECT_FALSE(Paused());

  // The whole 50 MB sent by a client that reads the answer while it writes.
  RawConnection full(port());
  ASSERT_TRUE(full.connected());
  std::atomic<std::size_t> sent{0};
  std::thread writer([&] {
    if (!full.Send("POST /api/queues/default/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n")) {
      return;
    }
    const std::string chunk(1 << 20, ' ');
    for (int i = 0; i < 50; ++i) {
      if (!full.Send(chunk)) return;
      sent += chunk.size();
    }
  });
  const std::string answer = full.ReadHead();
  writer.join();
  EXPECT_EQ(RawConnection::StatusOf(answer), 413) << answer;
  EXPECT_FALSE(Paused());
}

TEST_F(HttpSecurityTest, ExpectContinueWithAnOversizedBodyIsAnswered413) {
  StartDashboard();
  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(
      c.Send("POST /api/queues/default/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nContent-Length: 52428800\r\n"
             "Expect: 100-continue\r\n\r\n"));
  const std::string head = c.ReadHead();
  EXPECT_EQ(RawConnection::StatusOf(head), 413) << head;
  EXPECT_TRUE(c.ClosedWithin(std::chrono::seconds(20)));
}

// A refused request's body is never read as a request of its own (request smuggling past the
// checks): the connection ends with the refusal.
TEST_F(HttpSecurityTest, RefusedRequestsBodyIsNotServedAsTheNextRequest) {
  ASSERT_TRUE(client_->Insert("anything", {}).ok());
  StartDashboard();
  const std::string inner =
      "POST /api/queues/default/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(
      c.Send("POST /api/queues/default/resume HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Origin: http://evil.example\r\n"
             "Content-Type: application/json\r\nContent-Length: " +
             std::to_string(inner.size()) + "\r\n\r\n" + inner));
  const std::string head = c.ReadHead();
  EXPECT_EQ(RawConnection::StatusOf(head), 403) << head;
  EXPECT_TRUE(c.ClosedWithin(std::chrono::seconds(20)));
  EXPECT_FALSE(Paused());
}

TEST_F(HttpSecurityTest, EndlessChunkedBodyIsCutOff) {
  StartDashboard();
  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> sent{0};
  // At most 256 MB: the server must stop taking them long before.
  std::thread writer([&] {
    if (!c.Send("POST /api/instances/1/signal HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")) {
      return;
    }
    const std::string chunk = "10000\r\n" + std::string(0x10000, ' ') + "\r\n";
    while (!stop && sent < (256u << 20)) {
      if (!c.Send(chunk)) return;
      sent += chunk.size();
    }
  });
  const std::string head = c.ReadHead(std::chrono::seconds(30));
  const bool closed = c.ClosedWithin(std::chrono::seconds(30));
  stop = true;
  writer.join();
  EXPECT_EQ(RawConnection::StatusOf(head), 413) << head.substr(0, 200);
  EXPECT_TRUE(closed) << "the server still reads the chunked body";
  EXPECT_LT(sent.load(), 256u << 20);
}

TEST_F(HttpSecurityTest, EndlessHeaderListIsCutOff) {
  StartDashboard();
  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  std::atomic<std::size_t> sent{0};
  std::thread writer([&] {
    if (!c.Send("GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n")) return;
    const std::string line = "X-Fill: " + std::string(1000, 'a') + "\r\n";
    std::string block;
    for (int i = 0; i < 64; ++i) block += line;
    while (sent < (32u << 20)) {  // 32 MB of headers at most
      if (!c.Send(block)) return;
      sent += block.size();
    }
  });
  const bool closed = c.ClosedWithin(std::chrono::seconds(30));
  writer.join();
  EXPECT_TRUE(closed) << "the server still reads headers after " << sent << " bytes";
  EXPECT_LT(sent.load(), 32u << 20);

  // A request with too many (short) header lines is refused, not served.
  httplib::Client http("127.0.0.1", port());
  httplib::Headers many;
  for (int i = 0; i < 200; ++i) many.emplace("X-H" + std::to_string(i), "1");
  auto r = http.Get("/api/overview", many);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
}

TEST_F(HttpSecurityTest, ServerErrorBodyIsGenericAndTheDetailIsLogged) {
  StartDashboard();
  httplib::Client http("127.0.0.1", port());
  ASSERT_EQ(http.Get("/api/overview")->status, 200);
  sql_->Exec("ALTER TABLE " + client_->schema() + ".gd_instances RENAME TO gd_instances_elsewhere");
  auto r = http.Get("/api/instances");
  sql_->Exec("ALTER TABLE " + client_->schema() + ".gd_instances_elsewhere RENAME TO gd_instances");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->body.find("gd_instances"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("relation"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("exist"), std::string::npos) << r->body;
  EXPECT_EQ(Json::parse(r->body)["error"], "internal error (see the server log)");
}

TEST_F(HttpSecurityTest, IdleConnectionIsDroppedAfterTheReadTimeout) {
  StartDashboard();
  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("GET /api/overview HTTP/1.1\r\nHost: 127"));  // then silence
  EXPECT_TRUE(c.ClosedWithin(std::chrono::seconds(30)));
}

// --- with credentials ---

std::string Basic(const std::string& user, const std::string& password) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::string in = user + ":" + password;
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 3) {
    std::uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    if (i + 2 < in.size()) v |= static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kAlphabet[v & 63] : '=';
  }
  return "Basic " + out;
}

DashboardOptions WithToken(const std::string& token) {
  DashboardOptions o;
  o.security.token = token;
  return o;
}

TEST_F(HttpSecurityTest, CredentialsAreRequiredOnceConfigured) {
  ASSERT_TRUE(client_->Insert("anything", {}).ok());
  StartDashboard(WithToken("s3cret-token"));
  httplib::Client http("127.0.0.1", port());
  auto anonymous = http.Get("/api/overview");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_NE(anonymous->get_header_value("WWW-Authenticate").find("Basic"), std::string::npos);
  ExpectSecurityHeaders(anonymous, "401");
  EXPECT_EQ(http.Get("/")->status, 401);
  EXPECT_EQ(http.Get("/api/overview", {{"Authorization", "Bearer s3cret-tokeN"}})->status, 401);
  EXPECT_EQ(http.Get("/api/overview", {{"Authorization", "Bearer s3cret-token-"}})->status, 401);
  EXPECT_EQ(http.Get("/api/overview", {{"Authorization", Basic("x", "wrong")}})->status, 401);
  EXPECT_EQ(http.Get("/api/overview", {{"Authorization", "Basic !!!"}})->status, 401);
  EXPECT_EQ(http.Get("/api/overview", {{"Authorization", "Bearer s3cret-token"}})->status, 200);
  EXPECT_EQ(http.Get("/api/overview", {{"Authorization", Basic("ops", "s3cret-token")}})->status,
            200);

  // An unauthenticated action: 401, and nothing happens.
  auto pause = http.Post("/api/queues/default/pause", "{}", "application/json");
  ASSERT_TRUE(pause);
  EXPECT_EQ(pause->status, 401);
  EXPECT_FALSE(Paused());
  // A script with the bearer token acts (nothing a browser would send by itself).
  auto bearer = http.Post("/api/queues/default/pause", {{"Authorization", "Bearer s3cret-token"}},
                          "{}", "application/json");
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->status, 200) << bearer->body;
  EXPECT_TRUE(Paused());

  // Basic auth is held by the browser: actions also need the page's CSRF token.
  const httplib::Headers basic = {{"Authorization", Basic("ops", "s3cret-token")}};
  auto no_csrf = http.Post("/api/queues/default/resume", basic, "{}", "application/json");
  ASSERT_TRUE(no_csrf);
  EXPECT_EQ(no_csrf->status, 403);
  EXPECT_TRUE(Paused());
  auto session = http.Get("/api/session", basic);
  ASSERT_EQ(session->status, 200);
  const Json s = Json::parse(session->body);
  EXPECT_EQ(s["access"], "all");
  const std::string csrf = s["csrf"];
  EXPECT_GE(csrf.size(), 32u);
  httplib::Headers wrong = basic;
  wrong.emplace("X-CSRF-Token", csrf.substr(1) + "0");
  EXPECT_EQ(http.Post("/api/queues/default/resume", wrong, "{}", "application/json")->status, 403);
  httplib::Headers with_csrf = basic;
  with_csrf.emplace("X-CSRF-Token", csrf);
  auto resume = http.Post("/api/queues/default/resume", with_csrf, "{}", "application/json");
  ASSERT_TRUE(resume);
  EXPECT_EQ(resume->status, 200) << resume->body;
  EXPECT_FALSE(Paused());
}

TEST_F(HttpSecurityTest, CrossSiteActionsAreRefused) {
  StartDashboard(WithToken("t"));
  httplib::Client http("127.0.0.1", port());
  const std::string self = "http://127.0.0.1:" + std::to_string(port());
  auto post = [&](httplib::Headers h) {
    h.emplace("Authorization", "Bearer t");
    return http.Post("/api/queues/default/pause", h, "{}", "application/json")->status;
  };
  EXPECT_EQ(post({{"Origin", "http://evil.example"}}), 403);
  EXPECT_EQ(post({{"Origin", "null"}}), 403);
  EXPECT_EQ(post({{"Origin", "http://127.0.0.1:1"}}), 403);
  EXPECT_EQ(post({{"Sec-Fetch-Site", "cross-site"}}), 403);
  EXPECT_EQ(post({{"Sec-Fetch-Site", "same-site"}}), 403);
  EXPECT_EQ(post({{"Origin", self}, {"Sec-Fetch-Site", "cross-site"}}), 403);
  EXPECT_FALSE(Paused());
  EXPECT_EQ(post({{"Origin", self}, {"Sec-Fetch-Site", "same-origin"}}), 200);
  EXPECT_TRUE(Paused());
}

TEST_F(HttpSecurityTest, ReadOnlyRefusesEveryActionWith403) {
  auto parked = client_->Insert("anything", {});
  ASSERT_TRUE(parked.ok());
  sql_->Exec("UPDATE " + client_->schema() +
             ".gd_instances SET status = 'failed' WHERE id = " + std::to_string(*parked));
  auto o = WithToken("viewer");
  o.security.read_only = true;
  StartDashboard(o);
  httplib::Client http("127.0.0.1", port());
  const httplib::Headers auth = {{"Authorization", Basic("v", "viewer")}};
  auto session = http.Get("/api/session", auth);
  ASSERT_EQ(session->status, 200);
  const Json s = Json::parse(session->body);
  EXPECT_EQ(s["access"], "read_only");
  httplib::Headers with_csrf = auth;
  with_csrf.emplace("X-CSRF-Token", s["csrf"].get<std::string>());
  const std::string id = std::to_string(*parked);
  for (const std::string& path : std::vector<std::string>{
           "/api/queues/default/pause", "/api/queues/default/resume",
           "/api/instances/" + id + "/cancel", "/api/instances/" + id + "/retry",
           "/api/instances/" + id + "/signal", "/api/anything/else"}) {
    for (const auto& h : {auth, with_csrf, httplib::Headers{{"Authorization", "Bearer viewer"}}}) {
      auto r = http.Post(path, h, R"({"name": "x"})", "application/json");
      ASSERT_TRUE(r) << path;
      EXPECT_EQ(r->status, 403) << path << ": " << r->body;
    }
  }
  EXPECT_FALSE(Paused());
  EXPECT_EQ(client_->Get(*parked)->status, "failed");
  EXPECT_EQ(http.Get("/api/overview", auth)->status, 200);
  EXPECT_EQ(http.Get("/api/instances/" + id, auth)->status, 200);
}

TEST_F(HttpSecurityTest, AuthorizeHookDecidesPerRequest) {
  DashboardOptions o;
  o.security.authorize = [](const HttpRequestView& r) {
    const std::string who = r.Header("x-user");
    if (who == "admin") return HttpAccess::kAll;
    if (who == "viewer") return HttpAccess::kReadOnly;
    return HttpAccess::kNone;
  };
  StartDashboard(o);
  httplib::Client http("127.0.0.1", port());
  EXPECT_EQ(http.Get("/api/overview")->status, 401);
  EXPECT_EQ(http.Get("/api/overview", {{"X-User", "viewer"}})->status, 200);
  EXPECT_EQ(http.Post("/api/queues/default/pause", {{"X-User", "viewer"}}, "{}", "application/json")
                ->status,
            403);
  // The hook may read cookies, which a browser sends by itself: actions need the CSRF token.
  EXPECT_EQ(http.Post("/api/queues/default/pause", {{"X-User", "admin"}}, "{}", "application/json")
                ->status,
            403);
  const std::string csrf =
      Json::parse(http.Get("/api/session", {{"X-User", "admin"}})->body)["csrf"];
  EXPECT_EQ(http.Post("/api/queues/default/pause", {{"X-User", "admin"}, {"X-CSRF-Token", csrf}},
                      "{}", "application/json")
                ->status,
            200);
  EXPECT_TRUE(Paused());
}

TEST_F(HttpSecurityTest, NonLoopbackBindWithoutCredentialsIsRefusedAtStart) {
  DashboardOptions open;
  open.bind = "0.0.0.0";
  EXPECT_THROW(Dashboard::Start(*client_, open), ConfigError);
  open.bind = "::";
  EXPECT_THROW(Dashboard::Start(*client_, open), ConfigError);
  auto with_token = WithToken("t");
  with_token.bind = "0.0.0.0";
  auto d = Dashboard::Start(*client_, with_token);
  // The bind address accepts loopback names only unless told otherwise.
  httplib::Client http("127.0.0.1", d->port());
  EXPECT_EQ(http.Get("/api/overview", {{"Authorization", "Bearer t"}})->status, 200);
  EXPECT_EQ(
      http.Get("/api/overview", {{"Authorization", "Bearer t"}, {"Host", "10.1.2.3"}})->status,
      421);
  d.reset();
  DashboardOptions waived;
  waived.bind = "0.0.0.0";
  waived.security.allow_unauthenticated = true;
  waived.security.allowed_hosts = {"jobs.example.com"};
  d = Dashboard::Start(*client_, waived);
  httplib::Client waived_http("127.0.0.1", d->port());
  EXPECT_EQ(waived_http.Get("/api/overview", {{"Host", "jobs.example.com:8080"}})->status, 200);
  EXPECT_EQ(waived_http.Get("/api/overview", {{"Host", "jobs.example.org"}})->status, 421);
}

TEST_F(HttpSecurityTest, CliRefusesAPublicBindWithoutCredentials) {
  const std::string cli = GEN_DURABLE_CLI_PATH;
  const std::string cmd =
      "'" + cli + "' dashboard --database '" + db_ + "' --bind 0.0.0.0 --port 0 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  while (fgets(buf, sizeof(buf), p)) out += buf;
  const int status = pclose(p);
  ASSERT_TRUE(WIFEXITED(status)) << out;
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;
  EXPECT_NE(out.find("without credentials"), std::string::npos) << out;
}

TEST_F(HttpSecurityTest, MetricsEndpointChecksTokenAndHost) {
  auto o = Options({});
  auto engine = Engine::Start(o);
  Metrics metrics(*engine);
  MetricsServerOptions mo;
  mo.security.token = "scrape-me";
  auto server = MetricsServer::Start(metrics, mo);
  httplib::Client http("127.0.0.1", server->port());
  auto anonymous = http.Get("/metrics");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  ExpectSecurityHeaders(anonymous, "metrics 401");
  auto ok = http.Get("/metrics", {{"Authorization", "Bearer scrape-me"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_NE(ok->body.find("gen_durable_up"), std::string::npos);
  ExpectSecurityHeaders(ok, "metrics 200");
  EXPECT_EQ(http.Get("/metrics", {{"Authorization", "Bearer scrape-me"}, {"Host", "evil.example"}})
                ->status,
            421);
  MetricsServerOptions open;
  open.bind = "0.0.0.0";
  EXPECT_THROW(MetricsServer::Start(metrics, open), ConfigError);
}

TEST_F(HttpSecurityTest, ConnectionsBeyondTheCapAreAnswered503) {
  DashboardOptions o;
  o.security.threads = 1;
  o.security.max_connections = 2;
  o.security.read_timeout_ms = 5000;
  o.security.request_timeout_ms = 20000;
  StartDashboard(o);
  // Two connections that say nothing hold the worker and the one waiting place.
  RawConnection a(port());
  RawConnection b(port());
  ASSERT_TRUE(a.connected() && b.connected());
  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  const std::string head = c.ReadHead();
  EXPECT_EQ(RawConnection::StatusOf(head), 503) << head;
  // Once they are gone (read timeout), the server answers again.
  EXPECT_TRUE(a.ClosedWithin(std::chrono::seconds(30)));
  EXPECT_TRUE(b.ClosedWithin(std::chrono::seconds(30)));
  httplib::Client http("127.0.0.1", port());
  auto r = http.Get("/api/overview");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpSecurityTest, ServesHttpsWithTheGivenCertificate) {
  const fs::path dir = fs::temp_directory_path() / ("gd_tls_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string();
  const std::string key = (dir / "key.pem").string();
  const std::string make =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout '" +
      key + "' -out '" + cert + "' >/dev/null 2>&1";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  auto o = WithToken("tls-token");
  o.security.tls_cert_file = cert;
  o.security.tls_key_file = key;
  StartDashboard(o);
  EXPECT_TRUE(dashboard_->tls());
  httplib::SSLClient https("127.0.0.1", port());
  https.set_ca_cert_path(cert.c_str());
  https.enable_server_certificate_verification(true);
  auto r = https.Get("/api/overview", {{"Authorization", "Bearer tls-token"}});
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  ExpectSecurityHeaders(r, "https");
  EXPECT_EQ(https.Get("/api/overview")->status, 401);
  // Plain HTTP to the TLS port gets no answer.
  httplib::Client plain("127.0.0.1", port());
  plain.set_read_timeout(5, 0);
  auto p = plain.Get("/api/overview", {{"Authorization", "Bearer tls-token"}});
  EXPECT_TRUE(!p || p->status != 200);
  // A certificate that does not match its key is refused at start.
  auto bad = o;
  bad.security.tls_key_file = cert;
  EXPECT_THROW(Dashboard::Start(*client_, bad), ConfigError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gen_durable::testing
