// Bad input refused before anything reaches the database: names and keys past their limits,
// states that do not fit the machine, oversized payloads, invalid client options. The client
// checks its input before it borrows a connection, so these run against an unreachable server;
// a value that passes the checks therefore fails with a retryable connection error instead.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "gen_durable/gen_durable.hpp"

namespace gen_durable {
namespace {

struct Counter {
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Counter, n)

std::unique_ptr<Client> Unreachable(std::size_t max_payload_bytes = 8 * 1024 * 1024) {
  ClientOptions o;
  o.database = "host=/nonexistent/gd_bad_input dbname=x connect_timeout=1";
  o.max_payload_bytes = max_payload_bytes;
  return Client::Connect(o);
}

// Runs `call`, which must throw InvalidArgument whose message contains every one of `mentions`.
void ExpectInvalid(const std::function<void()>& call, std::vector<std::string> mentions) {
  try {
    call();
    ADD_FAILURE() << "accepted input that should mention " << mentions.front();
  } catch (const InvalidArgument& e) {
    for (const auto& m : mentions) {
      EXPECT_NE(std::string(e.what()).find(m), std::string::npos) << e.what();
    }
    EXPECT_EQ(e.retry(), Retry::kFatal);
    // The message stays short even for a megabyte of input.
    EXPECT_LT(std::string(e.what()).size(), 300u) << e.what();
  }
}

// Runs `call`, which must pass validation and so fail only at the (unreachable) database.
void ExpectReachesTheDatabase(const std::function<void()>& call) {
  try {
    call();
    ADD_FAILURE() << "succeeded without a database";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.retry(), Retry::kRetryable) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "refused before the database: " << e.what();
  }
}

InsertOptions WithQueue(std::string q) {
  InsertOptions o;
  o.queue = std::move(q);
  return o;
}

TEST(BadInput, InsertNamesAndKeysAreCheckedAgainstTheirLimits) {
  auto client = Unreachable();
  auto insert = [&](const std::string& fsm, InsertOptions o) {
    return [&client, fsm, o] { (void)client->Insert(fsm, o); };
  };
  // Machine names: 1..255 bytes of UTF-8 without control characters.
  ExpectInvalid(insert("", {}), {"machine name must not be empty"});
  ExpectInvalid(insert(std::string(256, 'm'), {}), {"machine name", "256 bytes", "255 bytes"});
  ExpectInvalid(insert("a\nb", {}), {"machine name", "control character"});
  ExpectInvalid(insert("caf\xc3", {}), {"machine name is not valid UTF-8"});
  ExpectInvalid(insert("\xed\xa0\x80", {}), {"not valid UTF-8"});  // a surrogate
  ExpectReachesTheDatabase(insert(std::string(255, 'm'), {}));
  ExpectReachesTheDatabase(insert("caf\xc3\xa9.\xf0\x9f\x93\xa6", {}));
  // Queues: what an engine can serve, 1..63 bytes.
  ExpectInvalid(insert("m", WithQueue("")), {"queue must not be empty"});
  ExpectInvalid(insert("m", WithQueue(std::string(64, 'q'))), {"queue", "64 bytes", "63 bytes"});
  ExpectInvalid(insert("m", WithQueue("q\x01")), {"queue", "control character"});
  ExpectReachesTheDatabase(insert("m", WithQueue(std::string(63, 'q'))));
  // Steps.
  InsertOptions step;
  step.step = std::string(300, 's');
  ExpectInvalid(insert("m", step), {"step", "300 bytes", "255 bytes"});
  // Keys: 1..2048 bytes of UTF-8 without NUL; any other character is allowed.
  InsertOptions key;
  key.unique_key = std::string(2049, 'k');
  ExpectInvalid(insert("m", key), {"unique_key", "2049 bytes", "2048 bytes"});
  key.unique_key = std::string("a\0b", 3);
  ExpectInvalid(insert("m", key), {"unique_key contains a NUL byte"});
  key.unique_key = "\xff";
  ExpectInvalid(insert("m", key), {"unique_key is not valid UTF-8"});
  key.unique_key = std::string(2048, 'k');
  ExpectReachesTheDatabase(insert("m", key));
  key.unique_key = "tab\tand\nnewline";
  ExpectReachesTheDatabase(insert("m", key));
  InsertOptions partition;
  partition.partition_key = std::string(5000, 'p');
  ExpectInvalid(insert("m", partition), {"partition_key", "5000 bytes", "2048 bytes"});
  partition.partition_key = "";
  ExpectInvalid(insert("m", partition), {"partition_key must not be empty"});
  InsertOptions limit;
  limit.rate_limit = RateLimitRef{std::string(256, 'r'), "", 1};
  ExpectInvalid(insert("m", limit), {"rate_limit name", "255 bytes"});
  limit.rate_limit = RateLimitRef{"api", std::string(2049, 'k'), 1};
  ExpectInvalid(insert("m", limit), {"rate_limit key", "2048 bytes"});
  // A batch is refused whole when one request is bad.
  std::vector<InsertRequest> batch = {{"m", std::nullopt, {}}, {"", std::nullopt, {}}};
  ExpectInvalid([&] { (void)client->InsertAll(batch); }, {"machine name must not be empty"});
}

TEST(BadInput, SignalNamesKeysAndPayloadsAreCheckedAgainstTheirLimits) {
  auto client = Unreachable(/*max_payload_bytes=*/1000);
  auto signal = [&](std::string name, Json payload = nullptr, SignalOptions o = {}) {
    return [&client, name, payload, o] { (void)client->Signal(1, name, payload, o); };
  };
  ExpectInvalid(signal(""), {"signal: name must not be empty"});
  ExpectInvalid(signal(std::string(256, 'n')), {"signal: name", "256 bytes", "255 bytes"});
  ExpectInvalid(signal(std::string("pay\0ed", 6)), {"signal: name", "control character"});
  ExpectInvalid(signal("paid\xc0\xaf"), {"signal: name is not valid UTF-8"});  // overlong
  ExpectReachesTheDatabase(signal(std::string(255, 'n')));
  ExpectInvalid(signal("paid", Json{{"blob", std::string(2000, 'x')}}),
                {"payload", "over max_payload_bytes (1000)"});
  ExpectInvalid(signal("paid", Json{{"s", "\xff"}}), {"payload is not valid JSON text"});
  ExpectReachesTheDatabase(signal("paid", Json{{"blob", std::string(900, 'x')}}));
  SignalOptions dedup;
  dedup.dedup_key = std::string(3000, 'd');
  ExpectInvalid(signal("paid", nullptr, dedup), {"dedup_key", "3000 bytes", "2048 bytes"});
  dedup.dedup_key = "";
  ExpectInvalid(signal("paid", nullptr, dedup), {"dedup_key must not be empty"});
  ExpectInvalid([&] { (void)client->SignalByKey(std::string(2049, 'k'), "paid"); },
                {"unique key", "2048 bytes"});
  ExpectInvalid([&] { (void)client->SignalByKey("", "paid"); }, {"unique key must not be empty"});
}

TEST(BadInput, AStateThatDoesNotFitTheMachineIsRefusedAtInsert) {
  auto client = Unreachable();
  auto m = Machine<Counter>("t.typed")
               .Step("start", [](StepContext<Counter>&) { return Done(); })
               .Build();
  auto j = Job<Counter>("t.typed_job")
               .Perform([](const Counter&, JobContext&) { return JobResult::Ok(); })
               .Build();
  auto untyped =
      Machine<Json>("t.untyped").Step("start", [](StepContext<Json>&) { return Done(); }).Build();
  for (const AnyMachine& machine : {AnyMachine(m), AnyMachine(j)}) {
    SCOPED_TRACE(machine.name());
    for (const Json& state : {Json("a string"), Json{{"n", "not a number"}}, Json{{"n", {1, 2}}},
                              Json::array({1, 2}), Json(42)}) {
      InsertOptions o;
      o.state = state;
      ExpectInvalid([&] { (void)client->Insert(machine, o); },
                    {"state does not fit machine '" + machine.name() + "' version 1"});
    }
    InsertOptions fits;
    fits.state = Json{{"n", 3}, {"unknown", true}};  // unknown fields are ignored
    ExpectReachesTheDatabase([&] { (void)client->Insert(machine, fits); });
    ExpectReachesTheDatabase([&] { (void)client->Insert(machine); });  // {} takes defaults
  }
  // An untyped machine takes any JSON.
  InsertOptions any;
  any.state = Json("a string");
  ExpectReachesTheDatabase([&] { (void)client->Insert(untyped, any); });
  // Text that is not JSON cannot get past the JSON type; invalid UTF-8 inside it is refused.
  InsertOptions bad_text;
  bad_text.state = Json{{"n", 1}, {"s", "\xc3\x28"}};
  ExpectInvalid([&] { (void)client->Insert(untyped, bad_text); }, {"state is not valid JSON text"});
}

TEST(BadInput, AnOversizedStateIsRefusedAtInsertNamingTheLimit) {
  auto client = Unreachable(/*max_payload_bytes=*/1000);
  InsertOptions o;
  o.state = Json{{"blob", std::string(5000, 'x')}};
  ExpectInvalid([&] { (void)client->Insert("m", o); },
                {"insert: state is", "over max_payload_bytes (1000)"});
  std::vector<InsertRequest> batch = {{"m", std::nullopt, o}};
  ExpectInvalid([&] { (void)client->InsertAll(batch); }, {"max_payload_bytes (1000)"});
}

TEST(BadInput, InvalidInsertOptionsAreRefusedNamingTheOption) {
  auto client = Unreachable();
  auto m = Machine<Json>("t.opts").Step("start", [](StepContext<Json>&) { return Done(); }).Build();
  auto refused = [&](InsertOptions o, const std::string& mentions) {
    ExpectInvalid([&] { (void)client->Insert(m, o); }, {mentions});
  };
  InsertOptions o;
  o.schedule_in = Millis{-1};
  refused(o, "schedule_in must be >= 0");
  o = {};
  o.schedule_in = Millis{10};
  o.schedule_at = std::chrono::system_clock::now();
  refused(o, "at most one of eligible_at, schedule_at, schedule_in");
  o = {};
  o.max_attempts = -1;
  refused(o, "max_attempts must be >= 0");
  o = {};
  o.step = "nope";
  refused(o, "'nope' is not a step of machine 't.opts'");
  o = {};
  o.rate_limit = RateLimitRef{"api", "", 0};
  refused(o, "rate_limit weight must be >= 1");
  o = {};
  o.rate_limit = RateLimitRef{"", "", 1};
  refused(o, "rate_limit needs a name");
  o = {};
  o.unique_scope = {"done"};
  refused(o, "unique_scope needs a unique_key");
  o.unique_key = "k";
  refused(o, "unique_scope must include every live status");
  o.unique_scope = {"sleeping"};
  refused(o, "'sleeping' is not a status");
  ExpectInvalid([&] { (void)client->Insert(AnyMachine(), {}); }, {"insert: empty machine"});
  ExpectInvalid([&] { (void)client->InsertWith(nullptr, m, {}); }, {"null connection"});
  ListFilter list;
  list.limit = -1;
  ExpectInvalid([&] { (void)client->List(list); }, {"limit must be >= 0"});
}

TEST(BadInput, MachineDefinitionsOutsideTheLimitsAreRefused) {
  auto done = [](StepContext<Json>&) { return Done(); };
  auto refused = [](const std::function<void()>& build, const std::string& mentions) {
    try {
      build();
      ADD_FAILURE() << "accepted a definition that should mention " << mentions;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(mentions), std::string::npos) << e.what();
    }
  };
  refused([&] { (void)Machine<Json>(std::string(256, 'm')).Step("start", done).Build(); },
          "255 bytes");
  refused([&] { (void)Machine<Json>("m").Queue(std::string(64, 'q')).Step("start", done).Build(); },
          "63 bytes");
  refused([&] { (void)Machine<Json>("m").Step("start", done).Step("a\tb", done).Build(); },
          "control character");
  refused([&] { (void)Machine<Json>("m\xff").Step("start", done).Build(); }, "not valid UTF-8");
  // At the limits, accepted.
  (void)Machine<Json>(std::string(255, 'm'))
      .Queue(std::string(63, 'q'))
      .Step("start", done)
      .Build();
}

TEST(BadInput, InvalidClientOptionsAreRefusedNamingTheOption) {
  auto refused = [](ClientOptions o, const std::string& mentions) {
    try {
      (void)Client::Connect(o);
      ADD_FAILURE() << "accepted options that should mention " << mentions;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(mentions), std::string::npos) << e.what();
    }
  };
  ClientOptions o;
  o.database = "host=/nonexistent dbname=x";
  refused(ClientOptions{}, "database must be set");
  ClientOptions pool = o;
  pool.pool_size = 0;
  refused(pool, "pool_size");
  ClientOptions payload = o;
  payload.max_payload_bytes = 0;
  refused(payload, "max_payload_bytes");
  ClientOptions schema = o;
  schema.schema = std::string(64, 's');
  refused(schema, "schema");
  schema.schema = "";
  refused(schema, "schema must not be empty");
}

}  // namespace
}  // namespace gen_durable
