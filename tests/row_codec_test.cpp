// The JSON of the store's rows without a server: decoding the columns gd_claim returns, and
// encoding a group commit's outcomes and new rows (src/gen_durable/store/row_codec.hpp).
#include "gen_durable/store/row_codec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gen_durable::detail {
namespace {

TEST(RowCodec, DecodesAClaimedRow) {
  ClaimedRow row;
  DecodeClaimJson(R"({"n": 1})", R"([{"id": 7, "name": "go", "payload": {"x": true}}])",
                  R"([{"id": 9, "fsm": "kid", "status": "done", "state": {}, "result": 3,
                       "last_error": null}])",
                  row);
  EXPECT_EQ(row.state_error, "");
  EXPECT_EQ(row.state, Json::parse(R"({"n": 1})"));
  ASSERT_EQ(row.signals.size(), 1u);
  EXPECT_EQ(row.signals[0].id, 7);
  EXPECT_EQ(row.signals[0].name, "go");
  EXPECT_EQ(row.signals[0].payload, Json::parse(R"({"x": true})"));
  ASSERT_EQ(row.children.size(), 1u);
  EXPECT_EQ(row.children[0].id, 9);
  EXPECT_EQ(row.children[0].fsm, "kid");
  EXPECT_EQ(row.children[0].status, "done");
  EXPECT_EQ(row.children[0].result, Json(3));
  EXPECT_EQ(row.children[0].last_error, std::nullopt);
}

TEST(RowCodec, AnUndecodableColumnFailsTheRowNotTheClaim) {
  ClaimedRow state;
  DecodeClaimJson(R"({"n": 1e1000})", std::nullopt, std::nullopt, state);
  EXPECT_NE(state.state_error.find("stored state cannot be decoded"), std::string::npos);

  ClaimedRow signals;
  DecodeClaimJson("{}", R"([{"id": 1.5, "name": "go", "payload": null}])", std::nullopt, signals);
  EXPECT_NE(signals.state_error.find("stored signals have an unexpected shape"), std::string::npos);
  EXPECT_TRUE(signals.signals.empty());

  ClaimedRow children;
  DecodeClaimJson("{}", std::nullopt, R"([{"id": 1}])", children);
  EXPECT_NE(children.state_error.find("stored children have an unexpected shape"),
            std::string::npos);
  EXPECT_TRUE(children.children.empty());
}

TEST(RowCodec, EncodesOutcomesWakesAndChildren) {
  OutcomeRow done;
  done.id = 1;
  done.lease_seq = 5;
  done.status = "done";
  done.result = R"({"ok":true})";
  done.consume = {3, 4};
  done.ran_step = "start";
  done.duration_ms = 1.25;

  OutcomeRow parked;
  parked.id = 2;
  parked.lease_seq = 6;
  parked.status = "awaiting_signal";
  parked.awaiting = {"go"};
  parked.shown = {8};
  parked.last_error = std::string("bad \xff byte");

  OutcomeRow parent;
  parent.id = 3;
  parent.lease_seq = 7;
  parent.status = "awaiting_children";
  parent.wait_for = 1;
  NewInstance child;
  child.fsm = "kid";
  child.queue = "q";
  child.step = "s";
  child.state = "{}";
  child.unique_key = "k";
  parent.children = {child};

  const CommitPayload p = EncodeCommit({done, parked, parent});
  const Json outcomes = Json::parse(p.outcomes);
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_EQ(outcomes[0]["id"], 1);
  EXPECT_EQ(outcomes[0]["seq"], 5);
  EXPECT_EQ(outcomes[0]["status"], "done");
  EXPECT_EQ(outcomes[0]["result"], Json::parse(R"({"ok":true})"));
  EXPECT_EQ(outcomes[0]["consume"], Json::parse("[3,4]"));
  EXPECT_EQ(outcomes[0]["ran_step"], "start");
  EXPECT_DOUBLE_EQ(outcomes[0]["duration_ms"].get<double>(), 1.25);
  EXPECT_TRUE(outcomes[0]["state"].is_null());
  EXPECT_EQ(outcomes[1]["awaiting"], Json::parse(R"(["go"])"));
  EXPECT_EQ(outcomes[1]["last_error"], "bad \xef\xbf\xbd byte");  // repaired to U+FFFD

  EXPECT_EQ(Json::parse(p.wakes), Json::parse(R"([{"id":2,"seq":6,"shown":[8]}])"));
  EXPECT_EQ(Json::parse(p.joins), Json::parse(R"([{"id":3,"wait_for":1}])"));
  const Json kids = Json::parse(p.children);
  ASSERT_EQ(kids.size(), 1u);
  EXPECT_EQ(kids[0]["parent"], 3);
  EXPECT_EQ(kids[0]["fsm"], "kid");
  EXPECT_EQ(kids[0]["unique_key"], "k");
}

TEST(RowCodec, EmptyCommitIsEmptyArrays) {
  const CommitPayload p = EncodeCommit({});
  EXPECT_EQ(p.outcomes, "[]");
  EXPECT_EQ(p.wakes, "[]");
  EXPECT_EQ(p.children, "[]");
  EXPECT_EQ(p.joins, "[]");
}

TEST(RowCodec, NewRowsRoundTrip) {
  NewInstance n;
  n.fsm = "m";
  n.queue = "q";
  n.step = "s";
  n.state = R"({"a":[1,2]})";
  n.delay_ms = 10;
  n.unique_scope = {"runnable"};
  n.rate_limit = RateLimitRef{"api", "", 2};
  const Json rows = Json::parse(NewInstancesJson({n, n}));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["state"], Json::parse(n.state));
  EXPECT_EQ(rows[0]["delay_ms"], 10);
  EXPECT_TRUE(rows[0]["eligible_at"].is_null());
  EXPECT_EQ(rows[0]["unique_scope"], Json::parse(R"(["runnable"])"));
  EXPECT_EQ(rows[0]["rate_limit"], "api");
  EXPECT_TRUE(rows[0]["rate_key"].is_null());
  EXPECT_EQ(rows[0]["rate_weight"], 2);
}

TEST(RowCodec, ArrayLiterals) {
  EXPECT_EQ(IdArray({}), "{}");
  EXPECT_EQ(IdArray({1, -2, 3}), "{1,-2,3}");
  EXPECT_EQ(TextArray({"a", "b\"c", "d\\e"}), R"({"a","b\"c","d\\e"})");
}

}  // namespace
}  // namespace gen_durable::detail
