// Decoding and judging operator requests read from gd_control (src/gen_durable/model/control.hpp).
#include "gen_durable/model/control.hpp"

#include <gtest/gtest.h>

#include <string>
#include <variant>

namespace gen_durable::detail {
namespace {

ControlRow Row(std::string concurrency, std::string node = "", std::string seq = "7") {
  return ControlRow{"default", std::move(node), std::move(concurrency), std::move(seq),
                    std::nullopt};
}

std::string Refusal(const ControlRow& row) {
  auto d = DecodeScaleRequest(row, "node-a");
  return std::holds_alternative<std::string>(d) ? std::get<std::string>(d) : "";
}

TEST(ControlDecode, AcceptsARequestForEveryNodeOrThisOne) {
  for (const auto& node : {"", "node-a"}) {
    auto d = DecodeScaleRequest(Row("3", node), "node-a");
    ASSERT_TRUE(std::holds_alternative<ScaleRequest>(d)) << std::get<std::string>(d);
    const auto& r = std::get<ScaleRequest>(d);
    EXPECT_EQ(r.queue, "default");
    EXPECT_EQ(r.concurrency, 3);
    EXPECT_EQ(r.seq, 7);
  }
  EXPECT_EQ(Refusal(Row("3", "node-b")), "for another node");
}

TEST(ControlDecode, RefusesConcurrencyOutOfRangeOrNotAPlainInteger) {
  for (const auto& bad :
       {"0", "-1", "10001", "2000000000", "99999999999", "+5", " 5", "5 ", "5.0", "0x10", ""}) {
    EXPECT_EQ(Refusal(Row(bad)), "concurrency must be in 1..10000") << "'" << bad << "'";
  }
  EXPECT_EQ(Refusal(Row("10000")), "");
  EXPECT_EQ(Refusal(Row("1")), "");
}

TEST(ControlDecode, RefusesNullsBadSeqsAndBadQueueNames) {
  ControlRow row = Row("3");
  row.queue.reset();
  EXPECT_EQ(Refusal(row), "a column is NULL");
  EXPECT_EQ(Refusal(Row("3", "", "0")), "seq must be a positive integer");
  EXPECT_EQ(Refusal(Row("3", "", "x")), "seq must be a positive integer");
  row = Row("3");
  row.queue = "";
  EXPECT_NE(Refusal(row), "");
  row.queue = std::string(300, 'q');
  EXPECT_NE(Refusal(row), "");
}

TEST(ControlJudge, AppliesNewRequestsOnceAndYieldsToANewerConfiguration) {
  ScaleRequest r;
  r.queue = "default";
  r.concurrency = 2;
  r.seq = 5;
  EXPECT_EQ(JudgeScale(r, 0, "4"), ScaleVerdict::kApply);
  EXPECT_EQ(JudgeScale(r, 5, "4"), ScaleVerdict::kAlreadyApplied);
  EXPECT_EQ(JudgeScale(r, 9, "4"), ScaleVerdict::kAlreadyApplied);
  r.seen = "4";  // applied before a restart under the same configuration: again
  EXPECT_EQ(JudgeScale(r, 0, "4"), ScaleVerdict::kApply);
  EXPECT_EQ(JudgeScale(r, 0, "6"), ScaleVerdict::kConfigurationNewer);
  EXPECT_EQ(DeclaredConfig(QueueConfig{4}), "4");
  EXPECT_EQ(DeclaredConfig(QueueConfig{2, 8}), "2..8");
}

TEST(ControlJudge, TheLatestRequestOfAQueueWins) {
  ScaleRequest a{"q", "", 2, 5, std::nullopt}, b{"q", "node-a", 3, 9, std::nullopt},
      c{"other", "", 4, 1, std::nullopt};
  auto latest = LatestPerQueue({b, a, c});
  EXPECT_EQ(latest.at("q").concurrency, 3);
  EXPECT_EQ(latest.at("other").concurrency, 4);
  EXPECT_EQ(LatestPerQueue({a, b}).at("q").seq, 9);
}

}  // namespace
}  // namespace gen_durable::detail
