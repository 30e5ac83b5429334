// The soak's levelling verdict (bench/driver/levelling.hpp).
#include "levelling.hpp"  // bench/driver/

#include <gtest/gtest.h>

#include <vector>

namespace gen_durable::benchmark {
namespace {

const LevelRule kGrowth{"x", LevelRule::kMustNotGrow, LevelRule::kMedian, 1.0, 0.10};

TEST(Levelling, FlatSeriesLevelsOff) {
  const LevelVerdict v = Judge({50, 51, 49, 50, 50, 52, 49, 50}, kGrowth);
  EXPECT_TRUE(v.judged);
  EXPECT_TRUE(v.levels_off);
  EXPECT_DOUBLE_EQ(v.earlier, 50);
  EXPECT_DOUBLE_EQ(v.later, 50);
}

TEST(Levelling, SteadyGrowthDoesNotLevelOff) {
  std::vector<double> leak;
  for (int i = 0; i < 20; ++i) leak.push_back(100 + 3 * i);  // +60% over the window
  const LevelVerdict v = Judge(leak, kGrowth);
  EXPECT_TRUE(v.judged);
  EXPECT_FALSE(v.levels_off);
  EXPECT_GT(v.change, v.allowed);
}

TEST(Levelling, GrowthWithinToleranceOrFloorPasses) {
  // +8% of 100 is below the 10% tolerance.
  EXPECT_TRUE(Judge({100, 100, 108, 108}, kGrowth).levels_off);
  // Tiny figures: +100% but under the absolute floor of 1.
  EXPECT_TRUE(Judge({0.5, 0.5, 1.2, 1.2}, kGrowth).levels_off);
  // +20%, above both.
  EXPECT_FALSE(Judge({100, 100, 120, 120}, kGrowth).levels_off);
}

TEST(Levelling, OddCountLeavesTheMiddleSampleOut) {
  // The 1000 in the middle is in neither half.
  const LevelVerdict v = Judge({10, 10, 1000, 10, 10}, kGrowth);
  EXPECT_DOUBLE_EQ(v.earlier, 10);
  EXPECT_DOUBLE_EQ(v.later, 10);
  EXPECT_TRUE(v.levels_off);
}

TEST(Levelling, TooFewSamplesAreNotJudged) {
  const LevelVerdict v = Judge({1, 2, 3}, kGrowth);
  EXPECT_FALSE(v.judged);
  EXPECT_FALSE(Judge({}, kGrowth).judged);
}

TEST(Levelling, PeaksOfASawtoothJudgeItAndRisingPeaksFail) {
  const LevelRule peaks{"dead", LevelRule::kMustNotGrow, LevelRule::kMax, 10.0, 0.10};
  // Vacuum keeps up: every cycle peaks near 1000, whatever phase a half ends on.
  EXPECT_TRUE(Judge({200, 600, 1000, 100, 500, 950, 300, 700, 990, 100}, peaks).levels_off);
  // Vacuum falls behind: the peaks climb.
  EXPECT_FALSE(Judge({200, 600, 1000, 300, 800, 1300, 500, 1100, 1700, 600}, peaks).levels_off);
}

TEST(Levelling, ARateMustNotDrop) {
  const LevelRule rate{"rate", LevelRule::kMustNotDrop, LevelRule::kMedian, 5.0, 0.10};
  EXPECT_TRUE(Judge({1000, 1000, 1000, 1010, 990, 1000}, rate).levels_off);
  // Growing throughput is no failure.
  EXPECT_TRUE(Judge({1000, 1000, 1000, 1500, 1500, 1500}, rate).levels_off);
  EXPECT_FALSE(Judge({1000, 1000, 1000, 700, 700, 700}, rate).levels_off);
}

}  // namespace
}  // namespace gen_durable::benchmark
