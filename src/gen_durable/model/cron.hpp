// Cron expressions of periodic schedules (docs/guides/schedules.md): the parser and the
// next-fire computation, pure functions of the expression, a time zone and a time.
//
// Accepted forms: five fields `minute hour day-of-month month day-of-week`, six with a seconds
// field first, the macros @yearly @annually @monthly @weekly @daily @midnight @hourly, and
// `@every DURATION` (units ms, s, m, h, d, concatenated: `1h30m`). Fields take `*`, numbers,
// names (jan..dec, sun..sat, any case), ranges `a-b`, steps `*/n` and `a-b/n`, and lists
// `a,b-c`; day-of-week 7 is Sunday too. As in Vixie cron, when both day-of-month and
// day-of-week are restricted (neither starts with `*`), a day matches when either does.
//
// Times are wall-clock times of the IANA zone (the system's tzdata). A local time that does
// not exist (the gap of a spring-forward transition) fires once, at the first instant after
// the gap; a local time that occurs twice (fall back) fires once, at its first occurrence.
// `@every` slots are multiples of the duration since the Unix epoch, whatever the zone, so
// every node computes the same slots.
#pragma once

#include <bitset>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace date {
class time_zone;
}

namespace gen_durable::detail {

class CronExpression {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  // Parses `expression` in time zone `zone` (an IANA name such as "Europe/Berlin").
  // Throws InvalidArgument naming what is wrong (a field, a value, an unknown zone), also for
  // an expression that never fires (e.g. `0 0 30 2 *`).
  static CronExpression Parse(std::string_view expression, std::string_view zone = "UTC");

  // The first fire time strictly after `after`; nullopt when there is none within eight years.
  std::optional<TimePoint> Next(TimePoint after) const;

  // The fire times in (`after`, `until`], oldest first, at most `limit` of them: the newest
  // when there are more (and `*skipped` then counts the older ones left out).
  std::vector<TimePoint> Between(TimePoint after, TimePoint until, std::size_t limit,
                                 std::int64_t* skipped = nullptr) const;

  const std::string& text() const { return text_; }

 private:
  using LocalSeconds = std::chrono::seconds;  // since 1970-01-01 00:00 local time

  std::optional<LocalSeconds> NextLocal(LocalSeconds after) const;
  bool DayMatches(std::chrono::sys_days day) const;

  std::string text_;
  const date::time_zone* zone_ = nullptr;
  std::chrono::milliseconds every_{0};  // > 0: an @every expression
  bool seconds_field_ = false;          // six fields: slots may fall on any second
  std::bitset<60> seconds_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1..31
  std::bitset<13> months_;   // 1..12
  std::bitset<7> weekdays_;  // 0 = Sunday
  bool day_star_ = false;
  bool weekday_star_ = false;
};

// `t` as UTC ISO-8601 text, "2026-12-06T10:00:00Z" (with ".250" milliseconds when not whole).
std::string IsoUtc(std::chrono::system_clock::time_point t);

}  // namespace gen_durable::detail
