// The CLI's duration flag values (ParseDurationMs): units, bare numbers, fractions, and a clear
// refusal of everything else.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "gen_durable/command_args.hpp"  // tools/

namespace gen_durable::tools {
namespace {

struct Good {
  const char* text;
  std::int64_t ms;
};

TEST(Durations, UnitsAndBareMillisecondsParse) {
  const Good cases[] = {
      {"0", 0},
      {"250", 250},  // bare: milliseconds, as before units existed
      {"250ms", 250},
      {"0ms", 0},
      {"30s", 30'000},
      {"5m", 300'000},
      {"1h", 3'600'000},
      {"1d", 86'400'000},
      {"007s", 7'000},
      {"1.5s", 1'500},  // a fraction that comes to whole milliseconds
      {"0.25m", 15'000},
      {".5s", 500},
      {"1.000s", 1'000},
      {"2.0ms", 2},
      {"1.0000000000000s", 1'000},  // trailing zeros say nothing finer
      {"9223372036854775807", 9'223'372'036'854'775'807},
      {"9223372036854775ms", 9'223'372'036'854'775},
      {"106751991167d", 9'223'372'036'828'800'000},
  };
  for (const Good& c : cases) {
    EXPECT_EQ(ParseDurationMs(c.text), c.ms) << c.text;
  }
}

TEST(Durations, ABareNumberTakesTheFlagsOwnUnit) {
  EXPECT_EQ(ParseDurationMs("10", 1'000), 10'000);
  EXPECT_EQ(ParseDurationMs("10ms", 1'000), 10);
  EXPECT_EQ(ParseDurationMs("2m", 1'000), 120'000);
}

struct Bad {
  const char* text;
  const char* reason;
};

TEST(Durations, BadValuesAreRefusedWithTheReason) {
  const Bad cases[] = {
      {"", "it is empty"},
      {"-1s", "it is negative"},
      {"-5", "it is negative"},
      {"5x", "unknown unit 'x'"},
      {"5S", "unknown unit 'S'"},
      {"5 s", "unknown unit ' s'"},
      {"5sec", "unknown unit 'sec'"},
      {"1h30m", "unknown unit 'h30m'"},
      {"s", "it does not start with a number"},
      {"+5s", "it does not start with a number"},
      {" 5s", "it does not start with a number"},
      {"1.s", "no digit after the decimal point"},
      {"0.5ms", "it is finer than a millisecond"},
      {"1.0001s", "it is finer than a millisecond"},
      {"0.0000000001d", "it is finer than a millisecond"},
      {"9223372036854775808", "it is too large"},
      {"99999999999999999999s", "it is too large"},
      {"9223372036854776s", "it is too large"},
      {"106751991168d", "it is too large"},
  };
  for (const Bad& c : cases) {
    try {
      ParseDurationMs(c.text);
      ADD_FAILURE() << "'" << c.text << "' was accepted";
    } catch (const UsageError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(c.reason), std::string::npos) << c.text << ": " << what;
      EXPECT_NE(what.find(std::string("'") + c.text + "' is not a duration"), std::string::npos)
          << what;
      EXPECT_NE(what.find("250ms, 30s, 5m, 1h, 1d"), std::string::npos) << what;
    }
  }
}

}  // namespace
}  // namespace gen_durable::tools
