// Who may use the dashboard and the metrics endpoint, and the limits their HTTP server keeps.
// Shared by DashboardOptions and MetricsServerOptions (see docs/security.md).
//
//   gen_durable::DashboardOptions o;
//   o.security.token = gen_durable::ReadSecretFile("/etc/gen_durable/dashboard.token");
//   o.security.read_only = true;                   // viewers only: every action is 403
//   o.security.allowed_hosts = {"jobs.example.com"};
//
// Without a token or an authorize hook the server only listens on a loopback address, unless
// allow_unauthenticated says otherwise.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gen_durable {

// What a request may do: nothing (401), read (every GET), or also act (pause, cancel, ...).
enum class HttpAccess { kNone, kReadOnly, kAll };

// A request as an authorize hook sees it. Header names compare case-insensitively.
struct HttpRequestView {
  std::string method;       // "GET", "POST", ...
  std::string path;         // "/api/overview" (no query)
  std::string remote_addr;  // the peer's address
  std::vector<std::pair<std::string, std::string>> headers;
  // The first header named `name` (any case), or "".
  std::string Header(std::string_view name) const;
};

struct HttpSecurityOptions {
  // A shared secret. Accepted as "Authorization: Bearer <token>" (scripts, Prometheus) and as
  // the password of HTTP basic auth with any user name (a browser asks for it). Compared in
  // constant time. Empty: no built-in credentials.
  std::string token;
  // Decides per request, after the token (when one is set) was accepted. Returning kNone
  // answers 401; an exception answers 500 (and is logged). Called from the server's threads,
  // several at once. With neither token nor hook, every request gets kAll.
  std::function<HttpAccess(const HttpRequestView&)> authorize;
  // Caps every request at kReadOnly: the page hides its buttons and every action is 403.
  bool read_only = false;
  // Lets a server without token or hook listen on a non-loopback address.
  bool allow_unauthenticated = false;
  // Host header values accepted besides localhost, 127.0.0.1, [::1] and the bind address
  // (without the port; "*" accepts any, for a proxy that checks the Host itself).
  std::vector<std::string> allowed_hosts;
  // Limits. A body longer than max_body_bytes, or any chunked body, is 413; more than
  // max_headers header lines is 431; a request whose head and body have not arrived within
  // request_timeout_ms is dropped.
  std::size_t max_body_bytes = 16 * 1024;
  int max_headers = 64;
  int read_timeout_ms = 3000;      // one read that waits longer ends the connection
  int request_timeout_ms = 10000;  // a whole request (head and body)
  int threads = 4;                 // requests served at once
  int max_connections = 32;        // open connections (served or waiting); more get 503
  // TLS: both set serves HTTPS (PEM files), neither plain HTTP.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// The first line of `path` without its line end: a token kept in a file. Throws ConfigError
// when the file cannot be read, is empty, or can be read by other users than its owner (a
// secret's file should be mode 0600 or 0400).
std::string ReadSecretFile(const std::string& path);

}  // namespace gen_durable
