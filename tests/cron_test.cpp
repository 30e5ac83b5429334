// The cron expressions of schedules: a table of (expression, zone, from) -> next fire, against
// the behaviour of Vixie cron (day-of-month / day-of-week, ranges, steps, names) and the DST
// rules of docs/guides/schedules.md, and a table of expressions that must be refused.
#include "gen_durable/model/cron.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "gen_durable/error.hpp"

namespace gen_durable::detail {
namespace {

using TimePoint = std::chrono::system_clock::time_point;

// "2026-12-06T10:07:30Z" or "...:30.250Z" -> the instant.
TimePoint Utc(const std::string& text) {
  int y = 0;
  unsigned mo = 0, d = 0;
  int h = 0, mi = 0, s = 0, ms = 0;
  const int n = std::sscanf(text.c_str(), "%d-%u-%uT%d:%d:%d.%dZ", &y, &mo, &d, &h, &mi, &s, &ms);
  EXPECT_GE(n, 6) << text;
  const std::chrono::sys_days day{std::chrono::year{y} / std::chrono::month{mo} /
                                  std::chrono::day{d}};
  return TimePoint{day} + std::chrono::hours{h} + std::chrono::minutes{mi} +
         std::chrono::seconds{s} + std::chrono::milliseconds{ms};
}

struct Case {
  const char* expression;
  const char* zone;
  const char* from;
  const char* next;  // nullptr: never
};

constexpr Case kCases[] = {
    // steps, ranges, lists
    {"*/15 * * * *", "UTC", "2026-12-06T10:07:30Z", "2026-12-06T10:15:00Z"},
    {"*/15 * * * *", "UTC", "2026-12-06T10:15:00Z", "2026-12-06T10:30:00Z"},
    {"1-30/5 * * * *", "UTC", "2026-12-06T10:07:00Z", "2026-12-06T10:11:00Z"},
    {"1-30/5 * * * *", "UTC", "2026-12-06T10:26:00Z", "2026-12-06T11:01:00Z"},
    {"0 8,12,18 * * *", "UTC", "2026-12-06T12:00:00Z", "2026-12-06T18:00:00Z"},
    {"0 8,12,18 * * *", "UTC", "2026-12-06T18:00:00Z", "2026-12-07T08:00:00Z"},
    {"5,10-12 3 * * *", "UTC", "2026-12-06T03:10:00Z", "2026-12-06T03:11:00Z"},
    // names, any case; 7 is Sunday (2026-12-06 is a Sunday, 2027-01-01 a Friday)
    {"0 9 * jan-mar mon-fri", "UTC", "2026-12-06T10:00:00Z", "2027-01-01T09:00:00Z"},
    {"0 12 * * SUN", "UTC", "2026-12-06T13:00:00Z", "2026-12-13T12:00:00Z"},
    {"0 12 * * 7", "UTC", "2026-12-06T13:00:00Z", "2026-12-13T12:00:00Z"},
    {"0 12 * * 5-7", "UTC", "2026-12-06T11:00:00Z", "2026-12-06T12:00:00Z"},
    {"0 0 1 Jun *", "UTC", "2026-12-06T00:00:00Z", "2027-06-01T00:00:00Z"},
    // day-of-month and day-of-week both restricted: either matches (13th, or any Friday)
    {"0 0 13 * 5", "UTC", "2026-12-06T00:00:00Z", "2026-12-11T00:00:00Z"},
    {"0 0 13 * 5", "UTC", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z"},
    {"0 0 13 * 5", "UTC", "2026-12-13T00:00:00Z", "2026-12-18T00:00:00Z"},
    // one of them `*`-led: both must match (`*/2` counts as `*`-led, as in Vixie cron)
    {"0 0 13 * *", "UTC", "2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z"},
    {"0 0 */2 * 5", "UTC", "2026-12-06T00:00:00Z", "2026-12-11T00:00:00Z"},
    {"0 0 */2 * 5", "UTC", "2026-12-11T00:00:00Z", "2026-12-25T00:00:00Z"},
    // 29 February: the next leap year
    {"0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 feb *", "UTC", "2028-02-28T12:00:00Z", "2028-02-29T00:00:00Z"},
    // the seconds field, first of six
    {"*/10 * * * * *", "UTC", "2026-12-06T10:00:05Z", "2026-12-06T10:00:10Z"},
    {"* * * * * *", "UTC", "2026-12-06T10:00:05.500Z", "2026-12-06T10:00:06Z"},
    {"30 0 9 * * *", "UTC", "2026-12-06T09:00:31Z", "2026-12-07T09:00:30Z"},
    {"0 * * * *", "UTC", "2026-12-06T10:00:00.500Z", "2026-12-06T11:00:00Z"},
    // @every: multiples of the duration since the epoch
    {"@every 30s", "UTC", "2026-12-06T10:00:10Z", "2026-12-06T10:00:30Z"},
    {"@every 30s", "UTC", "2026-12-06T10:00:30Z", "2026-12-06T10:01:00Z"},
    {"@every 1h30m", "UTC", "2026-12-06T10:00:00Z", "2026-12-06T10:30:00Z"},
    {"@every 250ms", "UTC", "2026-12-06T10:00:00.100Z", "2026-12-06T10:00:00.250Z"},
    {"@every 1d", "Europe/Berlin", "2026-12-06T10:00:00Z", "2026-12-07T00:00:00Z"},
    // macros
    {"@hourly", "UTC", "2026-12-06T10:00:00Z", "2026-12-06T11:00:00Z"},
    {"@weekly", "UTC", "2026-12-06T10:00:00Z", "2026-12-13T00:00:00Z"},
    {"@monthly", "UTC", "2026-12-06T10:00:00Z", "2027-01-01T00:00:00Z"},
    {"@yearly", "UTC", "2026-12-06T10:00:00Z", "2027-01-01T00:00:00Z"},
    {"@annually", "UTC", "2026-12-06T10:00:00Z", "2027-01-01T00:00:00Z"},
    {"@midnight", "UTC", "2026-12-06T10:00:00Z", "2026-12-07T00:00:00Z"},
    {"@daily", "Europe/Berlin", "2026-12-06T10:00:00Z", "2026-12-06T23:00:00Z"},
    // Europe/Berlin, spring forward 2027-03-28 02:00 CET -> 03:00 CEST (01:00Z): 02:30 does not
    // exist and fires once at the first instant after the gap; the next day is CEST again
    {"30 2 * * *", "Europe/Berlin", "2027-03-27T02:00:00Z", "2027-03-28T01:00:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2027-03-28T01:00:00Z", "2027-03-29T00:30:00Z"},
    {"*/15 * * * *", "Europe/Berlin", "2027-03-28T00:50:00Z", "2027-03-28T01:00:00Z"},
    {"*/15 * * * *", "Europe/Berlin", "2027-03-28T01:00:00Z", "2027-03-28T01:15:00Z"},
    // Europe/Berlin, fall back 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z): 02:30 occurs twice
    // and fires at its first occurrence only
    {"30 2 * * *", "Europe/Berlin", "2026-10-24T23:00:00Z", "2026-10-25T00:30:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
    {"0 * * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"},
    // America/New_York, spring forward 2027-03-14 02:00 EST -> 03:00 EDT (07:00Z)
    {"0 2 * * *", "America/New_York", "2027-03-13T08:00:00Z", "2027-03-14T07:00:00Z"},
    {"*/30 * * * *", "America/New_York", "2027-03-14T06:45:00Z", "2027-03-14T07:00:00Z"},
    {"*/30 * * * *", "America/New_York", "2027-03-14T07:00:00Z", "2027-03-14T07:30:00Z"},
    // America/New_York, fall back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z)
    {"30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z"},
    {"30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
    {"0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"},
    {"0 9 * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T14:00:00Z"},
};

TEST(Cron, NextFireTable) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.expression) + " in " + c.zone + " from " + c.from);
    const CronExpression e = CronExpression::Parse(c.expression, c.zone);
    const auto next = e.Next(Utc(c.from));
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(IsoUtc(*next), c.next);
  }
}

TEST(Cron, RefusesBadExpressions) {
  const char* bad[] = {
      "",
      "* * * *",
      "* * * * * * *",
      "60 * * * *",
      "* 24 * * *",
      "* * 0 * *",
      "* * * 13 *",
      "* * * * 8",
      "*/0 * * * *",
      "5/15 * * * *",
      "10-5 * * * *",
      "1,,2 * * * *",
      "a * * * *",
      "0 0 * * fri-mon",
      "0 0 * smarch *",
      "0 0 30 2 *",
      "0 0 31 4,6,9,11 *",
      "@every",
      "@every 5x",
      "@every 0s",
      "@every s",
      "@reboot",
      "@hourly 5",
  };
  for (const char* e : bad) {
    SCOPED_TRACE(e);
    EXPECT_THROW(CronExpression::Parse(e, "UTC"), InvalidArgument);
  }
  try {
    CronExpression::Parse("0 0 * * *", "Mars/Olympus");
    FAIL() << "an unknown zone was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("Mars/Olympus"), std::string::npos) << e.what();
  }
  try {
    CronExpression::Parse("61 * * * *", "UTC");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("minute field '61'"), std::string::npos) << e.what();
  }
}

TEST(Cron, BetweenKeepsTheNewestAndCountsTheRest) {
  const auto e = CronExpression::Parse("* * * * * *", "UTC");
  std::int64_t skipped = -1;
  auto slots = e.Between(Utc("2026-12-06T10:00:00Z"), Utc("2026-12-06T10:00:10Z"), 3, &skipped);
  ASSERT_EQ(slots.size(), 3U);
  EXPECT_EQ(IsoUtc(slots[0]), "2026-12-06T10:00:08Z");
  EXPECT_EQ(IsoUtc(slots[2]), "2026-12-06T10:00:10Z");
  EXPECT_EQ(skipped, 7);
  const auto every = CronExpression::Parse("@every 2s", "UTC");
  slots = every.Between(Utc("2026-12-06T10:00:00Z"), Utc("2026-12-06T10:00:09Z"), 2, &skipped);
  ASSERT_EQ(slots.size(), 2U);
  EXPECT_EQ(IsoUtc(slots[0]), "2026-12-06T10:00:06Z");
  EXPECT_EQ(IsoUtc(slots[1]), "2026-12-06T10:00:08Z");
  EXPECT_EQ(skipped, 2);
  slots = every.Between(Utc("2026-12-06T10:00:00Z"), Utc("2026-12-06T10:00:01Z"), 2, &skipped);
  EXPECT_TRUE(slots.empty());
  EXPECT_EQ(skipped, 0);
}

TEST(Cron, IsoUtcShowsMillisecondsOnlyWhenThere) {
  EXPECT_EQ(IsoUtc(Utc("2026-12-06T10:00:00Z")), "2026-12-06T10:00:00Z");
  EXPECT_EQ(IsoUtc(Utc("2026-12-06T10:00:00.250Z")), "2026-12-06T10:00:00.250Z");
}

}  // namespace
}  // namespace gen_durable::detail
