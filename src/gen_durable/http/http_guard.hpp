// The checks every request to the dashboard or the metrics endpoint passes before a handler
// sees it: header count, Host, body framing and size, credentials, the authorize hook,
// read-only, and for every request that changes something its origin and CSRF token.
// Pure logic over a request view (no socket), so the fuzz target (fuzz/fuzz_http.cpp) drives it
// as the server does.
#pragma once

#include <string>
#include <string_view>

#include "gen_durable/http_options.hpp"

namespace gen_durable::detail {

// How a request proved who it is.
enum class HttpAuth { kOpen, kBearer, kBasic, kHook };

struct HttpVerdict {
  int status = 0;          // 0: serve it; else answer this status with `error`
  std::string error;       // the message of a refusal (never a secret)
  bool challenge = false;  // add WWW-Authenticate (basic), so a browser asks
  HttpAccess access = HttpAccess::kNone;
  HttpAuth auth = HttpAuth::kOpen;
};

class HttpGuard {
 public:
  // `bind`: the address the server listens on (its Host name is accepted). Throws
  // InvalidArgument / ConfigError for options that cannot be served (non-loopback bind without
  // credentials, bad limits).
  HttpGuard(HttpSecurityOptions options, const std::string& bind);

  // The verdict on a request whose head (request line and headers) has arrived.
  // `header_count` counts the header lines the client sent.
  HttpVerdict Check(const HttpRequestView& request, std::size_t header_count) const;

  // The token a page sends back in X-CSRF-Token with every action (random per server).
  const std::string& csrf_token() const { return csrf_; }
  const HttpSecurityOptions& options() const { return options_; }

  // True for a request method that changes nothing (GET, HEAD, OPTIONS).
  static bool IsSafeMethod(std::string_view method);
  // `host` (a Host header value, with or without port) reduced to its lower-case name:
  // "Example.COM:80" -> "example.com", "[::1]:8080" -> "[::1]". "" when malformed.
  static std::string HostName(std::string_view host);
  // Whether `bind` is a loopback address (127.0.0.0/8, ::1, localhost).
  static bool IsLoopback(std::string_view bind);
  // a == b without a timing that depends on where they first differ.
  static bool ConstantTimeEquals(std::string_view a, std::string_view b);

 private:
  HttpVerdict Authenticate(const HttpRequestView& request) const;
  bool HostAllowed(const std::string& name) const;

  HttpSecurityOptions options_;
  std::vector<std::string> hosts_;  // accepted Host names, lower case
  bool any_host_ = false;
  std::string csrf_;
};

}  // namespace gen_durable::detail
