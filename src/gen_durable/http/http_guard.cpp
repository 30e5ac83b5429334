// Request checks of the HTTP surfaces (see http_guard.hpp and docs/security.md).
#include "gen_durable/http/http_guard.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <random>

#include "gen_durable/error.hpp"

namespace gen_durable {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 4648 base64 (padding optional); nullopt-like empty + false on a bad character.
bool DecodeBase64(std::string_view in, std::string& out) {
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      break;
    } else {
      return false;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return true;
}

std::string RandomHex(std::size_t bytes) {
  std::random_device rd;  // /dev/urandom on Linux
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) out += fmt::format("{:02x}", rd() & 0xff);
  return out;
}

}  // namespace

std::string HttpRequestView::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (IEquals(k, name)) return v;
  }
  return "";
}

std::string ReadSecretFile(const std::string& path) {
  // Checked on the descriptor that is read, not on the name (which could change in between).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ConfigError(fmt::format("cannot read the secret file {}", path));
  struct stat st {};
  std::string text;
  const bool stated = ::fstat(fd, &st) == 0;
  if (stated && S_ISREG(st.st_mode) && (st.st_mode & (S_IRWXG | S_IRWXO)) == 0) {
    char buf[4096];
    ssize_t n;
    while (text.size() < 65536 && (n = ::read(fd, buf, sizeof(buf))) > 0) {
      text.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  if (!stated || !S_ISREG(st.st_mode)) {
    throw ConfigError(fmt::format("the secret file {} is not a regular file", path));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    throw ConfigError(
        fmt::format("the secret file {} can be read by other users (chmod 600 {})", path, path));
  }
  std::string line = text.substr(0, text.find('\n'));
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) throw ConfigError(fmt::format("the secret file {} is empty", path));
  return line;
}

namespace detail {

bool HttpGuard::IsSafeMethod(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS";
}

std::string HttpGuard::HostName(std::string_view host) {
  host = Trim(host);
  if (host.empty()) return "";
  std::string_view name;
  std::string_view port;
  if (host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return "";
    name = host.substr(0, close + 1);
    const auto rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return "";
      port = rest.substr(1);
    }
  } else {
    const auto colon = host.find(':');
    name = host.substr(0, colon);
    if (colon != std::string_view::npos) port = host.substr(colon + 1);
  }
  if (name.empty()) return "";
  for (char c : port) {
    if (c < '0' || c > '9') return "";
  }
  for (char c : name) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                    c == '_' || c == '[' || c == ']' || c == ':';
    if (!ok) return "";
  }
  return Lower(name);
}

bool HttpGuard::IsLoopback(std::string_view bind) {
  const std::string b = Lower(bind);
  return b == "localhost" || b == "::1" || b == "[::1]" || b.rfind("127.", 0) == 0;
}

bool HttpGuard::ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Every byte of the longer one is looked at; only the lengths leak.
  const std::size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

HttpGuard::HttpGuard(HttpSecurityOptions options, const std::string& bind)
    : options_(std::move(options)), csrf_(RandomHex(32)) {
  if (options_.max_body_bytes == 0 || options_.max_body_bytes > (64u << 20)) {
    throw InvalidArgument("http: max_body_bytes must be in 1..64 MiB");
  }
  if (options_.max_headers < 8 || options_.max_headers > 1000) {
    throw InvalidArgument("http: max_headers must be in 8..1000");
  }
  if (options_.threads < 1 || options_.threads > 256) {
    throw InvalidArgument("http: threads must be in 1..256");
  }
  if (options_.max_connections < options_.threads || options_.max_connections > 10000) {
    throw InvalidArgument("http: max_connections must be in threads..10000");
  }
  if (options_.read_timeout_ms < 10 || options_.request_timeout_ms < options_.read_timeout_ms) {
    throw InvalidArgument("http: read_timeout_ms must be >= 10 and <= request_timeout_ms");
  }
  if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
    throw InvalidArgument("http: TLS needs both a certificate and a key file");
  }
  const bool credentials = !options_.token.empty() || options_.authorize;
  if (!credentials && !options_.allow_unauthenticated && !IsLoopback(bind)) {
    throw ConfigError(fmt::format(
        "http: refusing to listen on {} without credentials: set a token (--token-file), or "
        "bind 127.0.0.1, or pass --allow-unauthenticated if a proxy in front authenticates",
        bind));
  }
  hosts_ = {"localhost", "127.0.0.1", "[::1]"};
  auto add = [this](std::string host) {
    if (host == "*") {
      any_host_ = true;
      return;
    }
    if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
    const std::string name = HostName(host);
    if (name.empty()) throw InvalidArgument(fmt::format("http: '{}' is not a host name", host));
    hosts_.push_back(name);
  };
  if (bind != "0.0.0.0" && bind != "::" && !bind.empty()) add(bind);
  for (const auto& h : options_.allowed_hosts) add(h);
}

bool HttpGuard::HostAllowed(const std::string& name) const {
  if (name.empty()) return false;
  if (any_host_) return true;
  return std::find(hosts_.begin(), hosts_.end(), name) != hosts_.end();
}

HttpVerdict HttpGuard::Authenticate(const HttpRequestView& request) const {
  HttpVerdict v;
  if (!options_.token.empty()) {
    const std::string authorization = request.Header("Authorization");
    const std::string_view header = Trim(authorization);
    const auto space = header.find(' ');
    const std::string_view scheme = header.substr(0, space);
    const std::string_view value =
        space == std::string_view::npos ? std::string_view() : Trim(header.substr(space + 1));
    bool ok = false;
    if (IEquals(scheme, "Bearer")) {
      ok = ConstantTimeEquals(value, options_.token);
      v.auth = HttpAuth::kBearer;
    } else if (IEquals(scheme, "Basic")) {
      std::string decoded;
      if (DecodeBase64(value, decoded)) {
        const auto colon = decoded.find(':');
        if (colon != std::string::npos) {
          ok = ConstantTimeEquals(std::string_view(decoded).substr(colon + 1), options_.token);
        }
      }
      v.auth = HttpAuth::kBasic;
    }
    if (!ok) {
      v.status = 401;
      v.error = "authentication required";
      v.challenge = true;
      return v;
    }
  }
  v.access = HttpAccess::kAll;
  if (options_.authorize) {
    v.access = options_.authorize(request);
    if (v.auth == HttpAuth::kOpen) v.auth = HttpAuth::kHook;
    if (v.access == HttpAccess::kNone) {
      v.status = 401;
      v.error = "not authorized";
      v.challenge = !options_.token.empty();
      return v;
    }
  }
  if (options_.read_only) v.access = std::min(v.access, HttpAccess::kReadOnly);
  return v;
}

HttpVerdict HttpGuard::Check(const HttpRequestView& request, std::size_t header_count) const {
  HttpVerdict v;
  const auto refuse = [&](int status, std::string error) {
    v.status = status;
    v.error = std::move(error);
    return v;
  };
  if (header_count > static_cast<std::size_t>(options_.max_headers)) {
    return refuse(431, fmt::format("more than {} header lines", options_.max_headers));
  }
  // DNS rebinding: a foreign name that resolves here must not reach the handlers.
  if (!HostAllowed(HostName(request.Header("Host")))) {
    return refuse(421, "this host name is not served here (see --allow-host)");
  }
  // The body has not been read yet: refuse what would be too long before it is.
  if (!request.Header("Transfer-Encoding").empty()) {
    return refuse(413, fmt::format("request bodies must come with a Content-Length of at most "
                                   "{} bytes",
                                   options_.max_body_bytes));
  }
  const std::string length = std::string(Trim(request.Header("Content-Length")));
  if (!length.empty()) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), n);
    if (ec != std::errc() || end != length.data() + length.size()) {
      return refuse(400, "bad Content-Length");
    }
    if (n > options_.max_body_bytes) {
      return refuse(413, fmt::format("request body over {} bytes", options_.max_body_bytes));
    }
  }
  v = Authenticate(request);
  if (v.status != 0) return v;
  if (IsSafeMethod(request.method)) return v;

  // Anything else changes something: it must come from the dashboard's own page (or from a
  // client that is not a browser), and with full access.
  const std::string site = Lower(Trim(request.Header("Sec-Fetch-Site")));
  if (!site.empty() && site != "same-origin" && site != "none") {
    return refuse(403, "cross-site request refused");
  }
  const std::string origin = Lower(Trim(request.Header("Origin")));
  if (!origin.empty()) {
    const std::string host = Lower(Trim(request.Header("Host")));
    if (origin != "http://" + host && origin != "https://" + host) {
      return refuse(403, "cross-origin request refused");
    }
  }
  if (v.access != HttpAccess::kAll) return refuse(403, "read-only access");
  // A browser sends basic credentials (and cookies a hook may read) by itself, also on a
  // request another page makes it send: such a request must also prove it read our page.
  if (v.auth == HttpAuth::kBasic || v.auth == HttpAuth::kHook) {
    const std::string token = request.Header("X-CSRF-Token");
    if (!ConstantTimeEquals(Trim(token), csrf_)) {
      return refuse(403, "missing or wrong X-CSRF-Token (reload the page)");
    }
  }
  return v;
}

}  // namespace detail
}  // namespace gen_durable
