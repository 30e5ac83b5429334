// Black-box tests of the CLI on instances at work: signals (by id and by unique key, repeated and
// refused), fan-out, rate limits and partition keys.
#include <gtest/gtest.h>

#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

TEST_F(CliTest, SignalByIdWakesAnAwaitingCheckoutAndARepeatedDedupKeyReturnsTheSameId) {
  auto worker = StartWorker(kFastWorker);
  const std::int64_t id = Insert("demo.checkout", R"({"order": 7})");
  const std::string target = std::to_string(id);
  const Json parked = ShowUntil(id, [](const Json& j) { return HasStatus(j, "awaiting_signal"); });
  EXPECT_EQ(parked["step"], "await_pay") << parked.dump();

  // A signal it does not await stays in the inbox; a repeated dedup key delivers it once.
  const std::vector<std::string> note = {
      "signal", target, "note", "--payload", R"({"text": "gift wrap"})", "--dedup-key", "note-1"};
  const std::int64_t note_id = PrintedId(Run(note));
  ASSERT_GT(note_id, 0);
  EXPECT_EQ(PrintedId(Run(note)), note_id);
  std::vector<std::string> note_json = note;
  note_json.push_back("--json");
  CliResult as_json = Run(note_json);
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  EXPECT_EQ(Json::parse(as_json.out)["signal_id"], note_id) << as_json.out;

  const Json inbox = Show(id);
  EXPECT_EQ(inbox["status"], "awaiting_signal") << inbox.dump();
  ASSERT_EQ(inbox["signals"].size(), 1u) << inbox.dump();
  const Json& sg = inbox["signals"][0];
  EXPECT_EQ(sg["id"], note_id);
  EXPECT_EQ(sg["name"], "note");
  EXPECT_EQ(sg["payload"], Json({{"text", "gift wrap"}}));
  EXPECT_EQ(sg["consumed"], false);
  EXPECT_EQ(sg["dedup_key"], "note-1");
  CliResult human = Run({"show", target});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("#" + std::to_string(note_id) + R"( note {"text":"gift wrap"} pending)"),
            std::string::npos)
      << human.out;

  const std::int64_t paid_id =
      PrintedId(Run({"signal", target, "payment_confirmed", "--payload", R"({"amount": 5})"}));
  EXPECT_GT(paid_id, note_id);
  const Json done = ShowUntilTerminal(id);
  EXPECT_EQ(done["status"], "done") << done.dump();
  EXPECT_EQ(done["result"], Json({{"order", 7}, {"payment", {{"amount", 5}}}})) << done.dump();

  // A finished instance takes no more signals.
  CliResult late = Run({"signal", target, "payment_confirmed"});
  EXPECT_EQ(late.exit_code, 3) << late.err;
  ExpectOneLineReason(late);
  EXPECT_TRUE(StartsWith(late.err, "gen_durable: no_target: ")) << late.err;
}

TEST_F(CliTest, SignalByUniqueKeyWakesACheckoutAndAHeldKeyRefusesADuplicateInsert) {
  auto worker = StartWorker(kFastWorker);
  const std::int64_t id =
      Insert("demo.checkout", R"({"order": "A-2"})", {"--unique-key", "order-A-2"});
  const Json parked = ShowUntil(id, [](const Json& j) { return HasStatus(j, "awaiting_signal"); });
  EXPECT_EQ(parked["unique_key"], "order-A-2") << parked.dump();

  CliResult dup = Run(
      {"insert", "demo.checkout", "--state", R"({"order": "A-2"})", "--unique-key", "order-A-2"});
  EXPECT_EQ(dup.exit_code, 3) << dup.err;
  ExpectOneLineReason(dup);
  EXPECT_TRUE(StartsWith(dup.err, "gen_durable: duplicate: ")) << dup.err;

  EXPECT_GT(
      PrintedId(Run({"signal", "order-A-2", "payment_confirmed", "--payload", R"({"amount": 9})"})),
      0);
  const Json done = ShowUntilTerminal(id);
  EXPECT_EQ(done["status"], "done") << done.dump();
  EXPECT_EQ(done["result"], Json({{"order", "A-2"}, {"payment", {{"amount", 9}}}})) << done.dump();

  // The key is free again once its holder is terminal (the default scope is the live statuses).
  CliResult late = Run({"signal", "order-A-2", "payment_confirmed"});
  EXPECT_EQ(late.exit_code, 3) << late.err;
  ExpectOneLineReason(late);
  const std::int64_t again =
      Insert("demo.checkout", R"({"order": "A-2"})", {"--unique-key", "order-A-2"});
  EXPECT_GT(again, id);

  // A scope naming `done` keeps holding the key after completion.
  const std::int64_t once =
      Insert("demo.noop", "{}",
             {"--unique-key", "once", "--unique-scope",
              "scheduled,runnable,executing,awaiting_signal,awaiting_children,done"});
  EXPECT_EQ(ShowUntilTerminal(once)["status"], "done");
  CliResult held = Run({"insert", "demo.noop", "--unique-key", "once", "--unique-scope",
                        "scheduled,runnable,executing,awaiting_signal,awaiting_children,done"});
  EXPECT_EQ(held.exit_code, 3) << held.err;
  ExpectOneLineReason(held);
}

// A webhook retried after the checkout finished: the sender must see the success it already
// had, not no_target. By unique key too, also once the key is held by a newer checkout (which
// must not take the old payment).
TEST_F(CliTest, ARedeliveredSignalExitsZeroWithTheFirstIdAfterItsTargetFinished) {
  auto worker = StartWorker(kFastWorker);
  const std::int64_t id = Insert("demo.checkout", R"({"order": 8})", {"--unique-key", "order-8"});
  const std::string target = std::to_string(id);
  ShowUntil(id, [](const Json& j) { return HasStatus(j, "awaiting_signal"); });
  const std::vector<std::string> pay = {
      "signal",      target, "payment_confirmed", "--payload", R"({"amount": 3})",
      "--dedup-key", "pay-8"};
  const std::int64_t pay_id = PrintedId(Run(pay));
  ASSERT_GT(pay_id, 0);
  const Json done = ShowUntilTerminal(id);
  ASSERT_EQ(done["status"], "done") << done.dump();

  CliResult again = Run(pay);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(PrintedId(again), pay_id);
  std::vector<std::string> pay_json = pay;
  pay_json.push_back("--json");
  CliResult as_json = Run(pay_json);
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  EXPECT_EQ(Json::parse(as_json.out)["signal_id"], pay_id) << as_json.out;
  // The kept record is listed, consumed.
  const Json shown = Show(id);
  ASSERT_EQ(shown["signals"].size(), 1u) << shown.dump();
  EXPECT_EQ(shown["signals"][0]["id"], pay_id);
  EXPECT_EQ(shown["signals"][0]["consumed"], true);

  // By unique key, with no live holder and then with a newer holder of the key.
  const std::vector<std::string> by_key = {"signal", "order-8", "payment_confirmed", "--dedup-key",
                                           "pay-8"};
  EXPECT_EQ(PrintedId(Run(by_key)), pay_id);
  const std::int64_t newer =
      Insert("demo.checkout", R"({"order": 8})", {"--unique-key", "order-8"});
  ShowUntil(newer, [](const Json& j) { return HasStatus(j, "awaiting_signal"); });
  EXPECT_EQ(PrintedId(Run(by_key)), pay_id);
  const Json untouched = Show(newer);
  EXPECT_EQ(untouched["status"], "awaiting_signal") << untouched.dump();
  EXPECT_TRUE(untouched["signals"].empty()) << untouched.dump();

  // Anything but a repeat is still refused by the finished instance.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"signal", target, "payment_confirmed"},
        std::vector<std::string>{"signal", target, "payment_confirmed", "--dedup-key", "pay-9"}}) {
    SCOPED_TRACE(::testing::PrintToString(args));
    CliResult late = Run(args);
    EXPECT_EQ(late.exit_code, 3) << late.err;
    ExpectOneLineReason(late);
    EXPECT_TRUE(StartsWith(late.err, "gen_durable: no_target: ")) << late.err;
  }
}

TEST_F(CliTest, SignalToAnUnknownTargetExitsThree) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"signal", "987654321", "payment_confirmed"},
        std::vector<std::string>{"signal", "no-such-key", "payment_confirmed", "--payload", "1"},
        std::vector<std::string>{"signal", "--by-key", "42", "payment_confirmed"}}) {
    SCOPED_TRACE(::testing::PrintToString(args));
    CliResult r = Run(args);
    EXPECT_EQ(r.exit_code, 3) << r.err;
    ExpectOneLineReason(r);
    EXPECT_TRUE(StartsWith(r.err, "gen_durable: no_target: ")) << r.err;
  }
}

TEST_F(CliTest, FanoutJoinsItsChildrenAndCountsTheFailedOnes) {
  auto worker = StartWorker(kFastWorker);
  const std::int64_t id = Insert("demo.fanout", R"({"n": 6, "fail_every": 3})");
  const Json j = ShowUntilTerminal(id);
  EXPECT_EQ(j["status"], "done") << j.dump();
  EXPECT_EQ(j["result"], Json({{"done", 4}, {"failed", 2}})) << j.dump();
  ASSERT_EQ(j["children"].size(), 6u) << j.dump();
  int failed = 0;
  for (const Json& child_id : j["children"]) {
    const Json child = Show(child_id.get<std::int64_t>());
    EXPECT_EQ(child["fsm"], "demo.flaky") << child.dump();
    EXPECT_EQ(child["parent_id"], id) << child.dump();
    if (child["status"] == "failed") ++failed;
  }
  EXPECT_EQ(failed, 2);
  CliResult human = Run({"show", std::to_string(id)});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("(6)"), std::string::npos) << human.out;
}

TEST_F(CliTest, RateLimitedStepsStartNoFasterThanTheWorkersLimit) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(Insert("demo.limited", "{}"));
  std::vector<std::string> flags = kFastWorker;
  // Two limits, one with a burst, to exercise the repeated flag; `demo` allows 2 per second.
  flags.insert(flags.end(), {"--rate-limit", "demo:2:1000", "--rate-limit", "other:1:1000:3"});
  auto worker = StartWorker(flags);
  std::int64_t first = INT64_MAX;
  std::int64_t last = 0;
  for (std::int64_t id : ids) {
    const Json j = ShowUntilTerminal(id);
    ASSERT_EQ(j["status"], "done") << j.dump();
    const std::int64_t start = j["result"]["start_us"];
    first = std::min(first, start);
    last = std::max(last, start);
  }
  // A burst of 2, then 2 per second: 6 starts span about 2 s; assert a safe lower bound only.
  EXPECT_GE(last - first, 1'500'000) << "6 starts within " << (last - first) << " us";
  EXPECT_NE(worker->err().find("rate limits demo:2/1000ms,other:1/1000ms burst 3"),
            std::string::npos)
      << worker->err();
}

TEST_F(CliTest, InsertRateLimitThrottlesTheFirstStep) {
  const std::int64_t a = Insert("demo.sleep", R"({"ms": 0})", {"--rate-limit", "demo:acct-1"});
  const std::int64_t b = Insert("demo.sleep", R"({"ms": 0})", {"--rate-limit", "demo:acct-1"});
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--rate-limit", "demo:1:1000"});
  auto worker = StartWorker(flags);
  const Json ja = ShowUntilTerminal(a);
  const Json jb = ShowUntilTerminal(b);
  ASSERT_EQ(ja["status"], "done") << ja.dump();
  ASSERT_EQ(jb["status"], "done") << jb.dump();
  // One token per second in that key's bucket: the second start waits for a refill.
  EXPECT_GE(std::abs(SleepSpan(jb).start - SleepSpan(ja).start), 900'000)
      << ja.dump() << " " << jb.dump();
}

TEST_F(CliTest, StepNamingAnUndefinedRateLimitFailsNamingIt) {
  const std::int64_t id = Insert("demo.limited", R"({"key": "k1"})");
  auto worker = StartWorker(kFastWorker);
  const Json j = ShowUntilTerminal(id);
  EXPECT_EQ(j["status"], "failed") << j.dump();
  const std::string error = j["last_error"].is_string() ? j["last_error"].get<std::string>() : "";
  EXPECT_NE(error.find("rate limit"), std::string::npos) << j.dump();
  EXPECT_NE(error.find("'demo'"), std::string::npos) << j.dump();
}

TEST_F(CliTest, PartitionKeySerializesStepsWhileDifferentKeysOverlap) {
  const std::int64_t a1 = Insert("demo.sleep", R"({"ms": 300})", {"--partition-key", "p"});
  const std::int64_t a2 = Insert("demo.sleep", R"({"ms": 300})", {"--partition-key", "p"});
  const std::int64_t b1 = Insert("demo.sleep", R"({"ms": 300})", {"--partition-key", "x"});
  const std::int64_t b2 = Insert("demo.sleep", R"({"ms": 300})", {"--partition-key", "y"});
  EXPECT_EQ(Show(a1)["partition_key"], "p");
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--queues", "default:4"});
  auto worker = StartWorker(flags);
  std::map<std::int64_t, Span> spans;
  for (std::int64_t id : {a1, a2, b1, b2}) {
    const Json j = ShowUntilTerminal(id);
    ASSERT_EQ(j["status"], "done") << j.dump();
    spans[id] = SleepSpan(j);
  }
  EXPECT_FALSE(Overlap(spans[a1], spans[a2]))
      << "same key ran concurrently: [" << spans[a1].start << ", " << spans[a1].end << ") and ["
      << spans[a2].start << ", " << spans[a2].end << ")";
  EXPECT_TRUE(Overlap(spans[b1], spans[b2]))
      << "different keys did not overlap: [" << spans[b1].start << ", " << spans[b1].end
      << ") and [" << spans[b2].start << ", " << spans[b2].end << ")";
}

}  // namespace
}  // namespace gen_durable::cli_test
