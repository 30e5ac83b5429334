// The soak's levelling verdict: does a series sampled over a long run settle, or keep growing?
//
// A series is judged on the samples taken after the run settled (warm-up over, GC deleting).
// Those are split into an earlier and a later half, each summarized by one statistic, and the
// later one must not exceed the earlier one by more than `tolerance` of it or by more than
// `floor` (whichever is larger), so that tiny figures do not trip it. A rate is judged the other
// way round: the later half must not fall below the earlier one by as much.
//
//   LevelRule rule{"rss_mb", LevelRule::kMustNotGrow, LevelRule::kMedian, 2.0};
//   LevelVerdict v = Judge(rss_after_settling, rule);
//   if (v.judged && !v.levels_off) ...
#pragma once

#include <string>
#include <vector>

namespace gen_durable::benchmark {

struct LevelRule {
  enum Direction { kMustNotGrow, kMustNotDrop };
  // kMax suits a sawtooth (dead tuples between two vacuums): each half's peak. kMedian suits
  // the rest: one outlying sample does not decide.
  enum Statistic { kMedian, kMax };

  std::string series;
  Direction direction = kMustNotGrow;
  Statistic statistic = kMedian;
  double floor = 0;         // a change up to this much passes whatever its ratio
  double tolerance = 0.10;  // a change up to this fraction of the earlier figure passes
};

struct LevelVerdict {
  bool judged = false;      // false: too few samples (fewer than kMinLevelSamples)
  bool levels_off = false;  // meaningful when judged
  double earlier = 0;       // the statistic over the earlier half
  double later = 0;         // ... and over the later half
  double change = 0;        // later - earlier
  double allowed = 0;       // max(floor, tolerance * |earlier|)
};

// Fewer samples than this after settling cannot be split into two halves worth comparing.
inline constexpr int kMinLevelSamples = 4;

// Judges `values` (the samples after settling, in time order) by `rule`. With an odd count the
// middle sample belongs to neither half.
LevelVerdict Judge(const std::vector<double>& values, const LevelRule& rule);

}  // namespace gen_durable::benchmark
