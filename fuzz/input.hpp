// Helpers of the fuzz targets: typed values read off the input bytes, and property checks.
//
//   FuzzInput in(data, size);
//   const int kind = in.Below(6);
//   const std::string name = in.String(16);
//
// Every read succeeds: once the input is used up, reads return zeros and empty strings, so a
// short input still builds a (small) value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

namespace gen_durable::fuzz {

class FuzzInput {
 public:
  FuzzInput(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }

  std::uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  bool Bool() { return Byte() & 1; }

  // An integer of type T from sizeof(T) bytes (fewer when the input runs out).
  template <typename T>
  T Int() {
    static_assert(std::is_integral_v<T>);
    using U = std::make_unsigned_t<T>;
    U v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v = static_cast<U>((v << 8) | Byte());
    T out;
    std::memcpy(&out, &v, sizeof(out));
    return out;
  }
  // A value in [0, n) (0 when n is 0).
  std::size_t Below(std::size_t n) { return n == 0 ? 0 : Int<std::uint16_t>() % n; }
  double Double() {
    const auto bits = Int<std::uint64_t>();
    double d;
    std::memcpy(&d, &bits, sizeof(d));
    return d;
  }
  // A string of up to `max` arbitrary bytes (NUL, invalid UTF-8 and all).
  std::string String(std::size_t max) {
    std::size_t n = Below(max + 1);
    std::string s;
    while (n-- > 0 && !empty()) s.push_back(static_cast<char>(Byte()));
    return s;
  }
  // One of `choices`, or (one time in four) an arbitrary string: names that match most of the
  // time, so the paths behind a successful lookup are reached too.
  template <std::size_t N>
  std::string Pick(const char* const (&choices)[N], std::size_t max) {
    if (Below(4) == 0) return String(max);
    return choices[Below(N)];
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Stops the run when a property does not hold: libFuzzer and the replay both report an abort
// as a crash, with this line before it.
inline void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz check failed: %s\n", what);
    std::abort();
  }
}

}  // namespace gen_durable::fuzz
