// The cron parser and the next-fire search (see cron.hpp for the rules). The search walks
// local wall-clock time field by field, then maps each candidate to an instant through the
// zone's rules, which is where the DST gap and overlap are decided.
#include "gen_durable/model/cron.hpp"

#include <date/tz.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <deque>
#include <stdexcept>

#include "gen_durable/error.hpp"
#include "gen_durable/util/duration_units.hpp"

namespace gen_durable::detail {

namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// How far ahead Next looks: leap days on a given weekday come back within 28 years, but a
// schedule that fires less than once in eight is taken as a mistake.
constexpr int kSearchDays = 366 * 8 + 2;

constexpr std::array<const char*, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                     "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<const char*, 7> kDayNames = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

[[noreturn]] void Fail(std::string_view expression, const std::string& why) {
  throw InvalidArgument("cron expression '" + std::string(expression) + "': " + why);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct FieldSpec {
  const char* what;
  int lo;
  int hi;
  const char* const* names;  // nullptr: numbers only
  int name_count;
  int name_base;  // the value of names[0]
};

class FieldParser {
 public:
  FieldParser(std::string_view expression, const FieldSpec& spec)
      : expression_(expression), spec_(spec) {}

  // The set of values of `field`, one bit each.
  std::uint64_t Parse(std::string_view field) const {
    std::uint64_t mask = 0;
    std::size_t pos = 0;
    for (;;) {
      const std::size_t comma = field.find(',', pos);
      const std::string_view item =
          field.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
      mask |= Item(field, item);
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
    return mask;
  }

 private:
  std::uint64_t Item(std::string_view field, std::string_view item) const {
    if (item.empty()) Bad(field, "an empty list item");
    std::string_view range = item;
    int step = 1;
    const std::size_t slash = item.find('/');
    if (slash != std::string_view::npos) {
      range = item.substr(0, slash);
      step = Number(field, item.substr(slash + 1), "step");
      if (step < 1) Bad(field, "a step must be at least 1");
    }
    int a = spec_.lo;
    int b = spec_.hi;
    if (range != "*") {
      const std::size_t dash = range.find('-');
      if (dash != std::string_view::npos) {
        a = Value(field, range.substr(0, dash));
        b = Value(field, range.substr(dash + 1));
        if (a > b) Bad(field, "range " + std::string(range) + " runs backwards");
      } else {
        if (slash != std::string_view::npos) {
          Bad(field, "a step needs a range or * before it ('" + std::string(item) + "')");
        }
        a = b = Value(field, range);
      }
    }
    std::uint64_t mask = 0;
    for (int v = a; v <= b; v += step) mask |= std::uint64_t{1} << v;
    return mask;
  }

  int Value(std::string_view field, std::string_view text) const {
    if (spec_.names != nullptr && !text.empty() &&
        std::isalpha(static_cast<unsigned char>(text[0]))) {
      const std::string name = Lower(text);
      for (int i = 0; i < spec_.name_count; ++i) {
        if (name == spec_.names[i]) return spec_.name_base + i;
      }
      Bad(field, "unknown name '" + std::string(text) + "'");
    }
    const int v = Number(field, text, "value");
    if (v < spec_.lo || v > spec_.hi) {
      Bad(field, std::to_string(v) + " is out of range " + std::to_string(spec_.lo) + "-" +
                     std::to_string(spec_.hi));
    }
    return v;
  }

  int Number(std::string_view field, std::string_view text, const char* what) const {
    if (text.empty() || text.size() > 4) Bad(field, std::string("bad ") + what);
    int v = 0;
    for (char c : text) {
      if (!std::isdigit(static_cast<unsigned char>(c))) {
        Bad(field, std::string("bad ") + what + " '" + std::string(text) + "'");
      }
      v = v * 10 + (c - '0');
    }
    return v;
  }

  [[noreturn]] void Bad(std::string_view field, const std::string& why) const {
    Fail(expression_, std::string(spec_.what) + " field '" + std::string(field) + "': " + why);
  }

  std::string_view expression_;
  const FieldSpec& spec_;
};

std::vector<std::string_view> SplitBlanks(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    std::size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// "30s", "250ms", "1h30m": the sum of number-unit pairs.
milliseconds ParseEvery(std::string_view expression, std::string_view text) {
  if (text.empty()) Fail(expression, "@every needs a duration, e.g. '@every 30s'");
  milliseconds total{0};
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = i;
    std::int64_t n = 0;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) {
      n = n * 10 + (text[j] - '0');
      if (n > 1'000'000'000) Fail(expression, "@every: duration too long");
      ++j;
    }
    if (j == i) Fail(expression, "@every: bad duration '" + std::string(text) + "'");
    std::size_t k = j;
    while (k < text.size() && std::isalpha(static_cast<unsigned char>(text[k]))) ++k;
    const std::string unit = Lower(text.substr(j, k - j));
    const std::optional<std::int64_t> ms_per = DurationUnitMs(unit);
    if (!ms_per) Fail(expression, "@every: unit '" + unit + "' is not one of ms, s, m, h, d");
    total += milliseconds{n * *ms_per};
    i = k;
  }
  if (total <= milliseconds{0}) Fail(expression, "@every: the duration must be positive");
  if (total > days{366 * 8}) Fail(expression, "@every: the duration is over eight years");
  return total;
}

template <std::size_t N>
std::bitset<N> Bits(std::uint64_t mask) {
  std::bitset<N> out;
  for (std::size_t i = 0; i < N; ++i) out[i] = ((mask >> i) & 1U) != 0;
  return out;
}

}  // namespace

CronExpression CronExpression::Parse(std::string_view expression, std::string_view zone) {
  CronExpression c;
  c.text_ = std::string(expression);
  try {
    c.zone_ = date::locate_zone(std::string(zone));
  } catch (const std::exception&) {
    throw InvalidArgument("unknown time zone '" + std::string(zone) +
                          "' (an IANA name such as 'Europe/Berlin' is expected)");
  }
  std::vector<std::string_view> fields = SplitBlanks(expression);
  if (fields.empty()) Fail(expression, "empty");
  if (fields[0][0] == '@') {
    const std::string macro = Lower(fields[0]);
    if (macro == "@every") {
      if (fields.size() != 2) Fail(expression, "@every takes one duration, e.g. '@every 30s'");
      c.every_ = ParseEvery(expression, fields[1]);
      return c;
    }
    if (fields.size() != 1) Fail(expression, macro + " takes no fields");
    static const std::array<std::pair<const char*, const char*>, 7> kMacros = {{
        {"@yearly", "0 0 1 1 *"},
        {"@annually", "0 0 1 1 *"},
        {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"},
        {"@daily", "0 0 * * *"},
        {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    }};
    const char* expansion = nullptr;
    for (const auto& [name, text] : kMacros) {
      if (macro == name) expansion = text;
    }
    if (expansion == nullptr) {
      Fail(expression,
           "unknown macro " + macro +
               " (known: @yearly @annually @monthly @weekly @daily @midnight @hourly @every)");
    }
    CronExpression expanded = Parse(expansion, zone);
    expanded.text_ = c.text_;
    return expanded;
  }
  if (fields.size() != 5 && fields.size() != 6) {
    Fail(expression,
         "expected 5 fields (minute hour day-of-month month day-of-week) or 6 "
         "(seconds first), got " +
             std::to_string(fields.size()));
  }
  std::size_t f = 0;
  if (fields.size() == 6) {
    c.seconds_field_ = true;
    c.seconds_ =
        Bits<60>(FieldParser(expression, {"seconds", 0, 59, nullptr, 0, 0}).Parse(fields[f++]));
  } else {
    c.seconds_[0] = true;
  }
  c.minutes_ =
      Bits<60>(FieldParser(expression, {"minute", 0, 59, nullptr, 0, 0}).Parse(fields[f++]));
  c.hours_ = Bits<24>(FieldParser(expression, {"hour", 0, 23, nullptr, 0, 0}).Parse(fields[f++]));
  c.day_star_ = fields[f][0] == '*';
  c.days_ =
      Bits<32>(FieldParser(expression, {"day-of-month", 1, 31, nullptr, 0, 0}).Parse(fields[f++]));
  c.months_ = Bits<13>(
      FieldParser(expression, {"month", 1, 12, kMonthNames.data(), 12, 1}).Parse(fields[f++]));
  c.weekday_star_ = fields[f][0] == '*';
  std::uint64_t dow =
      FieldParser(expression, {"day-of-week", 0, 7, kDayNames.data(), 7, 0}).Parse(fields[f++]);
  if ((dow >> 7) & 1U) dow |= 1U;  // 7 is Sunday too
  c.weekdays_ = Bits<7>(dow);
  // A day-of-month that no selected month has (30 February) would make the search run out.
  const auto probe = std::chrono::system_clock::time_point{} + days{365};
  if (!c.Next(probe)) Fail(expression, "never fires (no date matches it)");
  return c;
}

bool CronExpression::DayMatches(std::chrono::sys_days day) const {
  const std::chrono::year_month_day ymd{day};
  if (!months_[static_cast<unsigned>(ymd.month())]) return false;
  const bool dom = days_[static_cast<unsigned>(ymd.day())];
  const bool dow = weekdays_[std::chrono::weekday{day}.c_encoding()];
  // Vixie cron: either restricted field alone decides when the other is `*`-led; both
  // restricted, either may match.
  if (day_star_ || weekday_star_) return dom && dow;
  return dom || dow;
}

std::optional<CronExpression::LocalSeconds> CronExpression::NextLocal(LocalSeconds after) const {
  const LocalSeconds start =
      seconds_field_ ? after + seconds{1} : std::chrono::floor<minutes>(after) + minutes{1};
  auto day = std::chrono::floor<days>(start);
  auto tod = start - day;
  for (int i = 0; i < kSearchDays; ++i, day += days{1}, tod = seconds{0}) {
    const std::chrono::sys_days sys_day{day};
    if (!DayMatches(sys_day)) continue;
    const int h0 = static_cast<int>(tod.count() / 3600);
    const int m0 = static_cast<int>(tod.count() % 3600 / 60);
    const int s0 = static_cast<int>(tod.count() % 60);
    for (int h = h0; h < 24; ++h) {
      if (!hours_[h]) continue;
      for (int m = h == h0 ? m0 : 0; m < 60; ++m) {
        if (!minutes_[m]) continue;
        for (int s = (h == h0 && m == m0) ? s0 : 0; s < 60; ++s) {
          if (seconds_[s]) return LocalSeconds{day + hours{h} + minutes{m} + seconds{s}};
        }
      }
    }
  }
  return std::nullopt;
}

std::optional<CronExpression::TimePoint> CronExpression::Next(TimePoint after) const {
  if (every_ > milliseconds{0}) {
    const auto t = std::chrono::floor<milliseconds>(after).time_since_epoch();
    auto slots = t / every_;
    if (t.count() < 0 && t % every_ != milliseconds{0}) --slots;  // floor division
    return TimePoint{(slots + 1) * every_};
  }
  const auto after_s = std::chrono::floor<seconds>(after);
  LocalSeconds local = zone_->to_local(after_s).time_since_epoch();
  // Each candidate is later in local time; a candidate that maps to an instant not after
  // `after` (the second pass of a repeated hour, or a gap already fired) is passed over. The
  // longest such run is an hour of seconds.
  for (int i = 0; i < 10'000; ++i) {
    const auto candidate = NextLocal(local);
    if (!candidate) return std::nullopt;
    const date::local_seconds lt{*candidate};
    const date::local_info info = zone_->get_info(lt);
    date::sys_seconds t;
    switch (info.result) {
      case date::local_info::unique:
      case date::local_info::ambiguous:  // the first occurrence only
        t = date::sys_seconds{lt.time_since_epoch() - info.first.offset};
        break;
      case date::local_info::nonexistent:  // in the gap: the first instant after it
        t = info.second.begin;
        break;
    }
    if (t > after) return TimePoint{t};
    local = *candidate;
  }
  return std::nullopt;
}

std::vector<CronExpression::TimePoint> CronExpression::Between(TimePoint after, TimePoint until,
                                                               std::size_t limit,
                                                               std::int64_t* skipped) const {
  std::int64_t dropped = 0;
  std::deque<TimePoint> kept;
  if (every_ > milliseconds{0} && until > after) {
    // Arithmetic: an outage of a fine-grained schedule can span millions of slots.
    const auto first = Next(after);
    if (first && *first <= until) {
      const std::int64_t count = (until - *first) / every_ + 1;
      const std::int64_t keep = std::min<std::int64_t>(count, static_cast<std::int64_t>(limit));
      dropped = count - keep;
      for (std::int64_t k = count - keep; k < count; ++k) kept.push_back(*first + k * every_);
    }
  } else {
    for (auto t = Next(after); t && *t <= until; t = Next(*t)) {
      kept.push_back(*t);
      if (kept.size() > limit) {
        kept.pop_front();
        ++dropped;
      }
    }
  }
  if (skipped != nullptr) *skipped = dropped;
  return {kept.begin(), kept.end()};
}

std::string IsoUtc(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::floor<milliseconds>(t);
  const auto day = std::chrono::floor<days>(ms);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss<milliseconds> hms{ms - day};
  char buf[40];
  const int frac = static_cast<int>(hms.subseconds().count());
  if (frac == 0) {
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                  static_cast<int>(hms.seconds().count()));
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                  static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                  static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                  frac);
  }
  return buf;
}

}  // namespace gen_durable::detail
