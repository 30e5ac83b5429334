// Guide example: signals and durable await. The snippets of docs/guides/signals.md come from
// this file.
//
//   example_guide_signals                  lists the machines, then exits
//   example_guide_signals DATABASE_URL     runs them through an engine (schema guide_signals)
#include <atomic>
#include <chrono>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <string>
#include <thread>

namespace gd = gen_durable;
using namespace std::chrono_literals;

// --- stand-ins for the outside world ---

void SendConfirmationMail(const std::string& email) { std::cout << "mail to " << email << "\n"; }
void SendReminder(const std::string& email) { std::cout << "reminder to " << email << "\n"; }

// How long a signup waits for its confirmation before a reminder; main() shortens it.
gd::Millis g_remind_after = 24h;

// --- a step that waits for one of two signals ---

struct Approval {
  std::string document;
  std::string decision;
  std::string by;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Approval, document, decision, by)

// Parks until "approved" or "rejected" arrives; then this same step runs again and finds it.
gd::Outcome Review(gd::StepContext<Approval>& ctx) {
  for (const gd::Signal& s : ctx.signals()) {
    if (s.name == "approved" || s.name == "rejected") {
      Approval a = ctx.state();
      a.decision = s.name;
      a.by = s.payload.value("by", "");
      return gd::Next("record", a);  // consumes the signals this step was shown
    }
  }
  return gd::Await({"approved", "rejected"}, ctx.state());  // consumes nothing
}

const auto kApproval =
    gd::Machine<Approval>("guide.approval")
        .Step("start", Review)
        .Step("record",
              [](gd::StepContext<Approval>& ctx) {
                return gd::Done({{"decision", ctx.state().decision}, {"by", ctx.state().by}});
              })
        .Register();

// --- accumulating signals by awaiting again ---

struct Poll {
  int needed = 3;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Poll, needed)

// Each run sees every vote so far: `await` consumes nothing, so the inbox keeps them. Votes the
// step has already seen do not wake it again; only a new one does.
gd::Outcome Tally(gd::StepContext<Poll>& ctx) {
  int votes = 0;
  int yes = 0;
  for (const gd::Signal& s : ctx.signals()) {
    if (s.name != "vote") continue;
    ++votes;
    if (s.payload.value("yes", false)) ++yes;
  }
  if (votes < ctx.state().needed) return gd::Await({"vote"}, ctx.state());
  return gd::Done({{"votes", votes}, {"yes", yes}});  // a terminal outcome clears the inbox
}

const auto kPoll = gd::Machine<Poll>("guide.poll").Step("start", Tally).Register();

// --- resuming elsewhere, and waking without a signal ---

struct Signup {
  std::string email;
  int reminders = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Signup, email, reminders)

// Sends the link once, then waits for the confirmation at step "check".
gd::Outcome SendLink(gd::StepContext<Signup>& ctx) {
  SendConfirmationMail(ctx.state().email);
  gd::AwaitOptions wait;
  wait.next_step = "check";       // the wake runs "check", so the mail is not sent twice
  wait.timeout = g_remind_after;  // wake anyway after this long, without a signal
  return gd::Await({"email_confirmed"}, ctx.state(), wait);
}

// Runs on the confirmation, or when the wait timed out (then there is no signal).
gd::Outcome Check(gd::StepContext<Signup>& ctx) {
  if (ctx.FindSignal("email_confirmed") != nullptr) return gd::Done({{"confirmed", true}});
  Signup s = ctx.state();
  if (s.reminders == 2) return gd::Stop("never confirmed");
  s.reminders += 1;
  SendReminder(s.email);
  gd::AwaitOptions wait;
  wait.timeout = g_remind_after;  // no next_step: this step, "check", runs again
  return gd::Await({"email_confirmed"}, s, wait);
}

const auto kSignup =
    gd::Machine<Signup>("guide.signup").Step("start", SendLink).Step("check", Check).Register();

// --- running it ---

// Polls until `id` is in `status` (or terminal); a real application would not wait like this.
gd::InstanceInfo WaitFor(gd::Client& client, std::int64_t id, const std::string& status) {
  for (;;) {
    gd::InstanceInfo info = *client.Get(id);
    if (info.status == status || info.status == "done" || info.status == "failed") return info;
    std::this_thread::sleep_for(20ms);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cout << "usage: example_guide_signals DATABASE_URL\nmachines: " << kApproval.name() << " "
              << kPoll.name() << " " << kSignup.name() << "\n";
    return 0;
  }
  g_remind_after = 300ms;

  gd::EngineOptions opts;
  opts.database = argv[1];
  opts.schema = "guide_signals";
  opts.reap_interval = 100ms;  // also the resolution of await timeouts
  auto engine = gd::Engine::Create(opts);
  std::atomic<int> timeouts{0};
  engine->telemetry().Attach("await.timeout", [&timeouts](const gd::TelemetryEvent& e) {
    std::cout << "await timed out: #" << e.metadata["id"] << "\n";
    ++timeouts;
  });
  engine->Start();
  gd::Client& client = engine->client();

  // An approval, signalled by id; the dedup key makes a redelivered webhook harmless.
  gd::Result<std::int64_t> doc = client.Insert(kApproval, Approval{"contract.pdf", "", ""});
  if (!doc) return 1;
  WaitFor(client, *doc, "awaiting_signal");
  gd::SignalOptions once;
  once.dedup_key = "webhook-8812";
  gd::Result<std::int64_t> sig = client.Signal(*doc, "approved", {{"by", "alice"}}, once);
  gd::Result<std::int64_t> again = client.Signal(*doc, "approved", {{"by", "alice"}}, once);
  if (!sig || !again || *sig != *again) return 1;  // the second delivery was a no-op
  std::cout << "approval: " << WaitFor(client, *doc, "done").result.dump() << "\n";

  gd::Result<std::int64_t> late = client.Signal(*doc, "rejected");
  if (!late && late.code() == gd::ErrorCode::kNoTarget) {
    std::cout << "too late: " << late.error().message << "\n";  // finished, or never existed
  }

  // A poll that collects three votes.
  gd::Result<std::int64_t> poll = client.Insert(kPoll, Poll{3});
  if (!poll) return 1;
  WaitFor(client, *poll, "awaiting_signal");
  for (bool yes : {true, false, true}) {
    if (!client.Signal(*poll, "vote", {{"yes", yes}})) return 1;
  }
  std::cout << "poll: " << WaitFor(client, *poll, "done").result.dump() << "\n";

  // A signup addressed by its unique key, confirmed after the first reminder.
  gd::InsertOptions keyed;
  keyed.unique_key = "signup:ada@example.com";
  gd::Result<std::int64_t> signup = client.Insert(kSignup, Signup{"ada@example.com", 0}, keyed);
  if (!signup) return 1;
  while (client.Get(*signup)->state.value("reminders", 0) < 1) std::this_thread::sleep_for(20ms);
  gd::Result<std::int64_t> confirmed =
      client.SignalByKey("signup:ada@example.com", "email_confirmed");
  if (!confirmed) return 1;
  std::cout << "signup: " << WaitFor(client, *signup, "done").result.dump() << " after "
            << timeouts.load() << " timeout(s)\n";
  engine->Stop();
  return 0;
}
