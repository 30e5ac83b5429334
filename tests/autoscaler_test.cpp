// The autoscaling rule (docs/operations.md): grow at once to what runs and waits, shrink after a
// cooldown.
#include "gen_durable/runtime/autoscaler.hpp"

#include <gtest/gtest.h>

namespace gen_durable::detail {
namespace {

AutoscaleInput In(int current, std::int64_t backlog, int in_flight, bool cooled) {
  AutoscaleInput in;
  in.current = current;
  in.min = 2;
  in.max = 10;
  in.backlog = backlog;
  in.in_flight = in_flight;
  in.cooled = cooled;
  return in;
}

TEST(AutoscaleTarget, GrowsAtOnceToWhatRunsAndWaits) {
  EXPECT_EQ(AutoscaleTarget(In(2, 5, 2, false)), 7);
  EXPECT_EQ(AutoscaleTarget(In(2, 5, 2, true)), 7);
}

TEST(AutoscaleTarget, NeverLeavesTheBounds) {
  EXPECT_EQ(AutoscaleTarget(In(2, 1'000'000, 2, false)), 10);
  EXPECT_EQ(AutoscaleTarget(In(5, 0, 0, true)), 2);
  EXPECT_EQ(AutoscaleTarget(In(2, 0, 0, true)), 2);
}

TEST(AutoscaleTarget, ShrinksOnlyAfterTheCooldown) {
  EXPECT_EQ(AutoscaleTarget(In(8, 0, 3, false)), 8);
  EXPECT_EQ(AutoscaleTarget(In(8, 0, 3, true)), 3);
}

TEST(AutoscaleTarget, KeepsWhatIsEnough) {
  EXPECT_EQ(AutoscaleTarget(In(6, 2, 4, true)), 6);
  EXPECT_EQ(AutoscaleTarget(In(6, 2, 4, false)), 6);
}

}  // namespace
}  // namespace gen_durable::detail
