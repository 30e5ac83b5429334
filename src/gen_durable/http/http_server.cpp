// The HTTP transport: bind first (so errors reach the caller), then serve on a thread; each
// connection is read through a stream with a byte budget and a deadline per request.
#include "gen_durable/http/http_server.hpp"

#include <fmt/format.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <vector>

#include "gen_durable/error.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable::detail {

namespace {

using Clock = std::chrono::steady_clock;

// What the request line and headers may take at most; the body's own limit comes on top.
constexpr std::size_t kHeadBudget = 64 * 1024;
constexpr int kKeepAliveMs = 2000;
constexpr int kRequestsPerConnection = 100;

thread_local HttpAccess t_access = HttpAccess::kNone;
thread_local bool t_close = false;   // the current request was refused: close the connection
thread_local bool t_drain = false;   // ... and its body was not read
thread_local bool t_reject = false;  // the connection being handed over is one too many

const httplib::Headers& SecurityHeaders() {
  // No inline script or style anywhere: the page's code and style are files of their own.
  static const httplib::Headers headers = {
      {"X-Frame-Options", "DENY"},
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"Cross-Origin-Opener-Policy", "same-origin"},
      {"Cross-Origin-Resource-Policy", "same-origin"},
  };
  return headers;
}

int MsLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

bool WaitFor(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) return (p.revents & (events | POLLHUP | POLLERR)) != 0;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

// A connection's stream (plain or TLS). Each request gets kHeadBudget + max_body_bytes bytes
// and request_timeout_ms: past either, reads fail and the library answers 400 or drops the
// connection. This is what bounds an endless header list, chunk stream or trickle.
class GuardedStream final : public httplib::Stream {
 public:
  GuardedStream(int sock, SSL* ssl, const HttpSecurityOptions& o)
      : sock_(sock), ssl_(ssl), options_(o) {}

  void StartRequest() {
    budget_ = kHeadBudget + options_.max_body_bytes;
    deadline_ = Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms);
  }

  // Waits up to `timeout_ms` for the first byte of a request.
  bool WaitForRequest(int timeout_ms) const {
    if (ssl_ && SSL_pending(ssl_) > 0) return true;
    return WaitFor(sock_, POLLIN, timeout_ms);
  }

  bool is_readable() const override {
    if (ssl_ && SSL_pending(ssl_) > 0) return true;
    return WaitFor(sock_, POLLIN, std::min(options_.read_timeout_ms, MsLeft(deadline_)));
  }

  bool is_writable() const override { return WaitFor(sock_, POLLOUT, options_.read_timeout_ms); }

  ssize_t read(char* ptr, size_t size) override {
    if (budget_ == 0 || Clock::now() >= deadline_) return -1;
    if (!is_readable()) return -1;
    const size_t n = std::min(size, budget_);
    ssize_t got;
    if (ssl_) {
      got = SSL_read(ssl_, ptr, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
    } else {
      do {
        got = ::recv(sock_, ptr, n, 0);
      } while (got < 0 && errno == EINTR);
    }
    if (got > 0) budget_ -= static_cast<size_t>(got);
    return got;
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    if (ssl_) return SSL_write(ssl_, ptr, static_cast<int>(std::min<size_t>(size, INT32_MAX)));
    ssize_t put;
    do {
      put = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (put < 0 && errno == EINTR);
    return put;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Address(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Address(::getsockname, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  template <typename Get>
  void Address(Get get, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (get(sock_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
    if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      ip = host;
      port = std::atoi(serv);
    }
  }

  int sock_;
  SSL* ssl_;
  const HttpSecurityOptions& options_;
  size_t budget_ = 0;
  Clock::time_point deadline_ = Clock::now();
};

// `threads` workers and room for `capacity` connections in all (served and waiting). A
// connection beyond that is answered 503 right away on the accepting thread.
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(int threads, int capacity) : capacity_(static_cast<size_t>(capacity)) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }

  void enqueue(std::function<void()> fn) override {
    {
      MutexLock lock(mu_);
      if (jobs_.size() + busy_ < capacity_) {
        jobs_.push_back(std::move(fn));
        cv_.NotifyOne();
        return;
      }
    }
    t_reject = true;  // process_and_close_socket answers 503 and closes
    fn();
    t_reject = false;
  }

  void shutdown() override {
    {
      MutexLock lock(mu_);
      stop_ = true;
    }
    cv_.NotifyAll();
    for (auto& t : workers_) t.join();
  }

  // Connections wait for a worker: the ones being served should not be kept alive.
  bool crowded() {
    MutexLock lock(mu_);
    return !jobs_.empty();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        MutexLock lock(mu_);
        while (!stop_ && jobs_.empty()) cv_.Wait(mu_);
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        ++busy_;
      }
      fn();
      MutexLock lock(mu_);
      --busy_;
    }
  }

  const size_t capacity_;
  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> jobs_ GD_GUARDED_BY(mu_);
  size_t busy_ GD_GUARDED_BY(mu_) = 0;
  bool stop_ GD_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

}  // namespace

HttpAccess CurrentAccess() { return t_access; }

void ReplyError(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(Json{{"error", message}}.dump(-1, ' ', false, Json::error_handler_t::replace),
                  "application/json; charset=utf-8");
}

class GuardedServer final : public httplib::Server {
 public:
  explicit GuardedServer(const HttpGuard& guard) : guard_(guard) {
    const auto& o = guard_.options();
    if (!o.tls_cert_file.empty()) {
      ctx_ = SSL_CTX_new(TLS_server_method());
      if (!ctx_) throw ConfigError("http: cannot create a TLS context: " + OpenSslError());
      SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
      SSL_CTX_set_options(ctx_, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
      if (SSL_CTX_use_certificate_chain_file(ctx_, o.tls_cert_file.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(ctx_, o.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(ctx_) != 1) {
        const std::string why = OpenSslError();
        SSL_CTX_free(ctx_);
        ctx_ = nullptr;
        throw ConfigError(fmt::format("http: cannot use the TLS certificate {} and key {}: {}",
                                      o.tls_cert_file, o.tls_key_file, why));
      }
    }
    new_task_queue = [this] {
      auto* pool = new BoundedPool(guard_.options().threads, guard_.options().max_connections);
      pool_.store(pool);
      return pool;
    };
  }
  ~GuardedServer() override {
    if (ctx_) SSL_CTX_free(ctx_);
  }

  bool tls() const { return ctx_ != nullptr; }

 private:
  bool process_and_close_socket(socket_t sock) override {
    if (t_reject) {
      static constexpr char kBusy[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
          "Retry-After: 1\r\n\r\n";
      if (!ctx_) (void)::send(sock, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(sock);
      return false;
    }
    const auto& o = guard_.options();
    SSL* ssl = nullptr;
    if (ctx_) {
      // The accepted socket has SO_RCVTIMEO (the read timeout): a silent peer cannot hold the
      // handshake for longer.
      ssl = SSL_new(ctx_);
      if (!ssl || SSL_set_fd(ssl, sock) != 1 || SSL_accept(ssl) != 1) {
        spdlog::debug("http: TLS handshake failed: {}", OpenSslError());
        if (ssl) SSL_free(ssl);
        ::close(sock);
        return false;
      }
    }
    GuardedStream strm(sock, ssl, o);
    bool ret = false;
    bool refused = false;
    for (int count = kRequestsPerConnection; count > 0; --count) {
      if (svr_sock_ == INVALID_SOCKET) break;
      const int wait = count == kRequestsPerConnection ? o.read_timeout_ms : kKeepAliveMs;
      if (!strm.WaitForRequest(wait)) break;
      strm.StartRequest();
      t_close = false;
      t_drain = false;
      t_access = HttpAccess::kNone;
      auto* pool = pool_.load();
      const bool last = count == 1 || (pool && pool->crowded());
      bool closed = false;
      ret = process_request(strm, last, closed, nullptr);
      refused = t_drain;
      if (!ret || closed || last || t_close) break;
    }
    if (ssl) {
      SSL_shutdown(ssl);
      SSL_free(ssl);
    }
    ::shutdown(sock, SHUT_WR);
    if (refused) {
      // The peer may still be sending the body we refused: read a little of it, so that the
      // close does not reset the connection before the peer read our answer.
      char sink[16384];
      const auto until = Clock::now() + std::chrono::milliseconds(500);
      size_t drained = 0;
      while (drained < (1u << 20) && WaitFor(sock, POLLIN, MsLeft(until))) {
        const ssize_t n = ::recv(sock, sink, sizeof(sink), 0);
        if (n <= 0) break;
        drained += static_cast<size_t>(n);
      }
    }
    ::close(sock);
    return ret;
  }

  const HttpGuard& guard_;
  SSL_CTX* ctx_ = nullptr;
  std::atomic<BoundedPool*> pool_{nullptr};
};

namespace {

HttpRequestView ViewOf(const httplib::Request& req, std::size_t& header_count) {
  HttpRequestView view;
  view.method = req.method;
  view.path = req.path;
  view.remote_addr = req.remote_addr;
  header_count = 0;
  for (const auto& [k, v] : req.headers) {
    // The library adds these four itself.
    if (k == "REMOTE_ADDR" || k == "REMOTE_PORT" || k == "LOCAL_ADDR" || k == "LOCAL_PORT") {
      continue;
    }
    ++header_count;
    view.headers.emplace_back(k, v);
  }
  return view;
}

// The guard's verdict on `req`; a refusal is written to `res`. True: serve it.
bool Admit(const HttpGuard& guard, const httplib::Request& req, httplib::Response& res) {
  std::size_t header_count = 0;
  const HttpRequestView view = ViewOf(req, header_count);
  HttpVerdict v;
  try {
    v = guard.Check(view, header_count);
  } catch (const std::exception& e) {
    spdlog::error("http: the authorize hook threw: {}", e.what());
    v.status = 500;
    v.error = "internal error (see the server log)";
  }
  if (v.status == 0) {
    t_access = v.access;
    return true;
  }
  // The body (if any) was not read, so the next request cannot be found on this connection:
  // every refusal ends it.
  t_close = true;
  res.set_header("Connection", "close");
  t_drain = req.has_header("Transfer-Encoding") ||
            (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
  if (v.challenge)
    res.set_header("WWW-Authenticate", R"(Basic realm="gen_durable", charset="UTF-8")");
  ReplyError(res, v.status, v.error);
  return false;
}

}  // namespace

HttpServerImpl::HttpServerImpl(const HttpSecurityOptions& security, const std::string& bind,
                               int port, const Routes& routes) {
  if (port < 0 || port > 65535) {
    throw InvalidArgument(fmt::format("http: port must be in 0..65535 (got {})", port));
  }
  guard_ = std::make_unique<HttpGuard>(security, bind);
  server_ = std::make_unique<GuardedServer>(*guard_);
  const HttpGuard& guard = *guard_;
  const auto& o = guard.options();
  server_->set_default_headers(SecurityHeaders());
  server_->set_payload_max_length(o.max_body_bytes);
  server_->set_read_timeout(std::chrono::milliseconds(o.read_timeout_ms));
  server_->set_write_timeout(std::chrono::milliseconds(o.read_timeout_ms));
  server_->set_pre_routing_handler([&guard](const httplib::Request& req, httplib::Response& res) {
    return Admit(guard, req, res) ? httplib::Server::HandlerResponse::Unhandled
                                  : httplib::Server::HandlerResponse::Handled;
  });
  // "Expect: 100-continue": answer before the client sends a body we would refuse.
  server_->set_expect_100_continue_handler(
      [&guard](const httplib::Request& req, httplib::Response& res) {
        return Admit(guard, req, res) ? 100 : res.status;
      });
  // Whatever a handler throws is logged; the client learns nothing of it.
  server_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("http: {} {} failed: {}", req.method, req.path, what);
        ReplyError(res, 500, "internal error (see the server log)");
      });
  routes(*server_, guard);
  // cpp-httplib's default also sets SO_REUSEPORT, which lets a second server bind the same
  // port and silently share its connections: a port in use must be an error instead.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
  });
  if (port == 0) {
    port_ = server_->bind_to_any_port(bind);
  } else {
    port_ = server_->bind_to_port(bind, port) ? port : -1;
  }
  if (port_ <= 0) {
    throw ConfigError(
        fmt::format("http: cannot listen on {}:{} (in use, or not an address of this "
                    "host)",
                    bind, port));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() is a no-op until the loop runs (it would then serve forever): wait for it.
  for (int i = 0; i < 5000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

HttpServerImpl::~HttpServerImpl() { Stop(); }

bool HttpServerImpl::tls() const { return server_->tls(); }

void HttpServerImpl::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace gen_durable::detail
