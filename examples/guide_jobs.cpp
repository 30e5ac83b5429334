// Guide example: jobs, the one-step machines. The snippets of docs/guides/jobs.md come from this
// file.
//
//   example_guide_jobs                 builds and registers the jobs, then exits
//   example_guide_jobs DATABASE_URL    also runs a few of them through an engine
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <stdexcept>
#include <string>

namespace gd = gen_durable;
using namespace std::chrono_literals;

// --- stand-ins for the outside world ---

// The mail server refuses the first two attempts of every message.
bool MailServerUp(int attempt) { return attempt >= 2; }
// A real sender would pass `dedup_key` along, so a re-run does not send twice.
std::string SendMail(const std::string& to, std::int64_t dedup_key) {
  return "<" + std::to_string(dedup_key) + "." + to + ">";
}
std::string Download(const std::string& url) {
  if (url.empty()) throw std::runtime_error("no url");
  return "<html>" + url + "</html>";
}

// --- a job with typed args and every kind of result ---

struct EmailArgs {
  std::string to;
  std::string subject;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EmailArgs, to, subject)

const auto kSendEmail =
    gd::Job<EmailArgs>("guide.send_email")
        .Queue("mail")
        .MaxAttempts(5)
        .Perform([](const EmailArgs& args, gd::JobContext& ctx) {
          if (args.to.find('@') == std::string::npos) {
            return gd::JobResult::Cancel("not an address: " + args.to);  // failed, no retry
          }
          if (!MailServerUp(ctx.attempt())) {
            return gd::JobResult::Error("mail server unavailable");  // retried after backoff
          }
          const std::string message_id = SendMail(args.to, /*dedup_key=*/ctx.id());
          return gd::JobResult::Ok({{"message_id", message_id}});  // done, result stored
        })
        .Backoff([](int attempt) { return gd::Millis{100 * (attempt + 1)}; })
        .Register();

// --- exceptions, and a custom backoff built on the default ---

struct FetchArgs {
  std::string url;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FetchArgs, url)

// The default curve, capped at 10 s instead of 300 s.
gd::Millis QuickBackoff(int attempt) {
  return std::min(gd::DefaultBackoff(attempt), gd::Millis{10'000});
}

const auto kFetch = gd::Job<FetchArgs>("guide.fetch")
                        .MaxAttempts(3)
                        .Backoff(QuickBackoff)
                        .Perform([](const FetchArgs& args, gd::JobContext&) {
                          const std::string body = Download(args.url);  // may throw: retried
                          return gd::JobResult::Ok({{"bytes", body.size()}});
                        })
                        .Register();

// --- untyped args ---

const auto kPing =
    gd::Job<gd::Json>("guide.ping")
        .Perform([](const gd::Json& args, gd::JobContext& ctx) {
          return gd::JobResult::Ok({{"pong", args.value("n", 0)}, {"instance", ctx.id()}});
        })
        .Register();

// Waits (at most a minute) until the instance has ended: Client::Wait is woken as the commit
// that ends it happens.
gd::InstanceInfo WaitTerminal(gd::Client& client, std::int64_t id) {
  gd::Result<gd::InstanceInfo> info = client.Wait(id, std::chrono::minutes(1));
  if (!info) throw std::runtime_error(info.error().message);
  return *info;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cout << "usage: example_guide_jobs DATABASE_URL\njobs: " << kSendEmail.name() << " "
              << kFetch.name() << " " << kPing.name() << "\n";
    return 0;
  }
  gd::EngineOptions opts;
  opts.database = argv[1];
  opts.queues = {{"default", {4}}, {"mail", {2}}};
  auto engine = gd::Engine::Start(opts);
  gd::Client& client = engine->client();

  auto sent = client.Insert(kSendEmail, EmailArgs{"ada@example.org", "hello"});
  auto refused = client.Insert(kSendEmail, EmailArgs{"nobody", "hello"});
  auto fetched = client.Insert(kFetch, FetchArgs{"https://example.org/"});
  auto failed = client.Insert(kFetch, FetchArgs{""});  // throws three times, then failed
  gd::InsertOptions bad_args;
  bad_args.state = {{"to", 42}};  // not a string: fails at once, without retries
  auto undecodable = client.Insert(kSendEmail, bad_args);
  auto pinged = client.Insert(kPing, gd::Json{{"n", 7}});
  if (!sent || !refused || !fetched || !failed || !undecodable || !pinged) return 1;

  for (std::int64_t id : {*sent, *refused, *fetched, *failed, *undecodable, *pinged}) {
    const gd::InstanceInfo info = WaitTerminal(client, id);
    std::cout << info.fsm << " #" << id << ": " << info.status << " after " << info.attempt + 1
              << " run(s); result " << info.result.dump() << "; last_error "
              << info.last_error.value_or("-") << "\n";
  }
  engine->Stop();
  return 0;
}
