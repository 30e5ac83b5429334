// Fuzz target: the checks in front of every handler of the dashboard and the metrics endpoint
// (HttpGuard::Check, the function the server's pre-routing step calls with the request head).
//
// Input: one configuration byte, then a request head as it comes off the wire: a request line
// and header lines separated by "\n" (a trailing "\r" is dropped). "{token}" and "{csrf}" in the
// input are replaced by the configured token and the server's CSRF token, so the paths behind
// a successful login and a valid action are reached too.
//
// The head is checked under the configuration the first byte picks (token or not, read-only,
// an authorize hook, an extra allowed host). Properties: nothing throws; the status is one of
// the documented ones; a request that is let through has an accepted Host, no chunked body and
// no body over the limit, proved the token when one is set, was not refused by the hook; an
// action let through has full access, is not cross-site, comes from the page's own origin when
// it names one, and carries the CSRF token when its credentials are browser-held. Also:
// HostName never returns a name with a port, and ConstantTimeEquals is equality.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gen_durable/http/http_guard.hpp"  // src/
#include "input.hpp"

namespace gen_durable::fuzz {
namespace {

using detail::HttpAuth;
using detail::HttpGuard;

constexpr char kToken[] = "fuzz-token-7";

std::string ReplaceAll(std::string s, std::string_view what, const std::string& with) {
  for (std::size_t at = s.find(what); at != std::string::npos;
       at = s.find(what, at + with.size())) {
    s.replace(at, what.size(), with);
  }
  return s;
}

std::string Norm(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

HttpRequestView Parse(std::string_view text) {
  HttpRequestView view;
  bool first = true;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      first = false;
      const auto sp = line.find(' ');
      view.method = std::string(line.substr(0, sp));
      if (sp != std::string_view::npos) {
        std::string_view target = line.substr(sp + 1);
        target = target.substr(0, target.find(' '));
        view.path = std::string(target.substr(0, target.find('?')));
      }
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    view.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return view;
}

void CheckOne(const HttpGuard& guard, const HttpRequestView& request, bool read_only, bool token,
              bool hook, bool extra_host) {
  const detail::HttpVerdict v = guard.Check(request, request.headers.size());
  const int s = v.status;
  Check(s == 0 || s == 400 || s == 401 || s == 403 || s == 413 || s == 421 || s == 431,
        "status is one of the documented refusals");
  Check(s != 0 || v.error.empty(), "an admitted request has no error");
  Check(s == 0 || !v.error.empty(), "a refusal says why");
  Check(v.error.find(kToken) == std::string::npos, "no refusal echoes the token");
  Check(v.error.find(guard.csrf_token()) == std::string::npos, "no refusal echoes the CSRF token");
  if (s != 0) return;

  Check(request.headers.size() <= static_cast<std::size_t>(guard.options().max_headers),
        "admitted: header count within the limit");
  const std::string host = HttpGuard::HostName(request.Header("Host"));
  Check(host == "localhost" || host == "127.0.0.1" || host == "[::1]" ||
            (extra_host && host == "jobs.example.com"),
        "admitted: the Host is one of this server's names");
  Check(request.Header("Transfer-Encoding").empty(), "admitted: no chunked body");
  const std::string length = Norm(request.Header("Content-Length"));
  std::uint64_t n = 0;
  for (char c : length) {
    Check(c >= '0' && c <= '9', "admitted: the Content-Length is a number");
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
    Check(n <= guard.options().max_body_bytes, "admitted: the Content-Length is within the limit");
  }
  if (token)
    Check(v.auth == HttpAuth::kBearer || v.auth == HttpAuth::kBasic,
          "admitted with a token set: the token was presented");
  if (hook) Check(request.Header("X-Role") != "none", "admitted: the hook did not refuse");
  Check(v.access != HttpAccess::kNone, "admitted: some access");
  if (read_only) Check(v.access == HttpAccess::kReadOnly, "read-only caps the access");
  if (HttpGuard::IsSafeMethod(request.method)) return;

  Check(!read_only, "read-only: no action is admitted");
  Check(v.access == HttpAccess::kAll, "an admitted action has full access");
  const std::string site = Norm(request.Header("Sec-Fetch-Site"));
  Check(site.empty() || site == "same-origin" || site == "none",
        "an admitted action is not cross-site");
  const std::string origin = Norm(request.Header("Origin"));
  if (!origin.empty()) {
    const std::string h = Norm(request.Header("Host"));
    Check(origin == "http://" + h || origin == "https://" + h,
          "an admitted action comes from the page's own origin");
  }
  if (v.auth == HttpAuth::kBasic || v.auth == HttpAuth::kHook) {
    Check(Norm(request.Header("X-CSRF-Token")) == guard.csrf_token(),
          "an admitted action with browser-held credentials carries the CSRF token");
  }
}

}  // namespace
}  // namespace gen_durable::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gen_durable;
  using namespace gen_durable::fuzz;
  if (size == 0) return 0;
  const std::uint8_t config = data[0];
  const bool token = config & 1;
  const bool read_only = config & 2;
  const bool hook = config & 4;
  const bool extra_host = config & 8;

  HttpSecurityOptions o;
  if (token) o.token = kToken;
  o.read_only = read_only;
  if (hook) {
    o.authorize = [](const HttpRequestView& r) {
      const std::string role = r.Header("X-Role");
      if (role == "none") return HttpAccess::kNone;
      if (role == "viewer") return HttpAccess::kReadOnly;
      return HttpAccess::kAll;
    };
  }
  if (extra_host) o.allowed_hosts = {"Jobs.Example.com"};
  o.max_body_bytes = 16 * 1024;  // "Content-Length" of at most 5 digits in the check above
  const HttpGuard guard(o, "127.0.0.1");

  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  text = ReplaceAll(std::move(text), "{token}", kToken);
  text = ReplaceAll(std::move(text), "{csrf}", guard.csrf_token());
  const HttpRequestView request = Parse(text);
  CheckOne(guard, request, read_only, token, hook, extra_host);

  // The helpers on the raw bytes.
  const std::string host = HttpGuard::HostName(text.substr(0, 64));
  Check(host.empty() || host.front() == '[' || host.find(':') == std::string::npos,
        "HostName drops the port");
  const std::string_view a(text.data(), text.size() / 2);
  const std::string_view b(text.data() + text.size() / 2, text.size() - text.size() / 2);
  Check(HttpGuard::ConstantTimeEquals(a, b) == (a == b), "ConstantTimeEquals is equality");
  Check(HttpGuard::ConstantTimeEquals(a, a), "ConstantTimeEquals is reflexive");
  return 0;
}
