// The soak's levelling verdict (see levelling.hpp).
#include "levelling.hpp"  // bench/driver/

#include <algorithm>
#include <cmath>

namespace gen_durable::benchmark {

namespace {

double Summarize(std::vector<double> v, LevelRule::Statistic statistic) {
  if (statistic == LevelRule::kMax) return *std::max_element(v.begin(), v.end());
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

LevelVerdict Judge(const std::vector<double>& values, const LevelRule& rule) {
  LevelVerdict v;
  if (static_cast<int>(values.size()) < kMinLevelSamples) return v;
  const std::size_t half = values.size() / 2;
  v.judged = true;
  v.earlier = Summarize({values.begin(), values.begin() + static_cast<std::ptrdiff_t>(half)},
                        rule.statistic);
  v.later =
      Summarize({values.end() - static_cast<std::ptrdiff_t>(half), values.end()}, rule.statistic);
  v.change = v.later - v.earlier;
  v.allowed = std::max(rule.floor, rule.tolerance * std::abs(v.earlier));
  const double worsening = rule.direction == LevelRule::kMustNotGrow ? v.change : -v.change;
  v.levels_off = worsening <= v.allowed;
  return v;
}

}  // namespace gen_durable::benchmark
