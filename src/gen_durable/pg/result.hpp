// An owned PGresult (text format) and the typed reader of its rows.
//
// Callers read a row by column name or in column order, with the C++ type they expect:
//
//   for (int i = 0; i < r.rows(); ++i) {
//     pg::Row row = r.row(i);
//     auto id = row.Get<std::int64_t>("id");
//     auto key = row.Get<std::optional<std::string>>("unique_key");  // NULL: nullopt
//   }
//
// A NULL read as a type that is not a std::optional, a cell that does not parse as the type, and
// an unknown column name throw InvalidArgument.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "gen_durable/error.hpp"

struct pg_result;

namespace gen_durable::detail::pg {

class Row;

// An owned PGresult with typed accessors. Row/column indices are 0-based.
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* res);
  Result(Result&& other) noexcept;
  Result& operator=(Result&& other) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result();

  int rows() const;
  int columns() const;
  // Number of rows touched by an INSERT/UPDATE/DELETE.
  std::int64_t affected() const;
  bool IsNull(int row, int col) const;
  std::string_view Text(int row, int col) const;  // "" for NULL
  std::string String(int row, int col) const { return std::string(Text(row, col)); }
  std::int64_t Int64(int row, int col) const;  // throws InvalidArgument on NULL / non-integer
  int Int(int row, int col) const { return static_cast<int>(Int64(row, col)); }
  double Double(int row, int col) const;  // throws InvalidArgument on NULL / non-number
  bool Bool(int row, int col) const;  // Postgres 't' / 'f'; throws InvalidArgument on NULL / other
  std::optional<std::string> OptString(int row, int col) const;
  std::optional<std::int64_t> OptInt64(int row, int col) const;
  int ColumnIndex(const char* name) const;  // -1 when absent (libpq's rules: case-folded)
  // The column named exactly `name` (the first, if several are); throws InvalidArgument when
  // there is none.
  int Column(std::string_view name) const;
  // The name of column `col`, for messages.
  std::string Name(int col) const;

  // The reader of row `i` (0-based); the Result must outlive it.
  Row row(int i) const;

 private:
  pg_result* res_ = nullptr;
};

// One row of a Result, read by column name (Get) or in column order (Next). T is one of
// std::string, std::string_view (valid while the Result lives), std::int64_t, int, double,
// bool, or a std::optional of one of them (NULL: std::nullopt).
class Row {
 public:
  Row(const Result& result, int row) : result_(&result), row_(row) {}

  template <typename T>
  T Get(std::string_view column) const {
    return At<T>(result_->Column(column));
  }
  // Reads the next column, starting with the first.
  template <typename T>
  T Next() {
    return At<T>(next_++);
  }
  // Passes over the next `n` columns.
  void Skip(int n = 1) { next_ += n; }
  bool IsNull(std::string_view column) const {
    return result_->IsNull(row_, result_->Column(column));
  }

  // Reads column `col` (0-based) as T.
  template <typename T>
  T At(int col) const {
    if constexpr (IsOptional<T>::value) {
      if (result_->IsNull(row_, col)) return std::nullopt;
      return At<typename T::value_type>(col);
    } else if constexpr (std::is_same_v<T, std::string>) {
      return String(col);
    } else if constexpr (std::is_same_v<T, std::string_view>) {
      return StringView(col);
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      return result_->Int64(row_, col);
    } else if constexpr (std::is_same_v<T, int>) {
      return result_->Int(row_, col);
    } else if constexpr (std::is_same_v<T, double>) {
      return result_->Double(row_, col);
    } else {
      static_assert(std::is_same_v<T, bool>, "Row reads text, integers, doubles and booleans");
      return result_->Bool(row_, col);
    }
  }

 private:
  template <typename T>
  struct IsOptional : std::false_type {};
  template <typename T>
  struct IsOptional<std::optional<T>> : std::true_type {};

  // Text columns refuse NULL like the other types; read a std::optional to allow it.
  std::string String(int col) const { return std::string(StringView(col)); }
  std::string_view StringView(int col) const;

  const Result* result_;
  int row_;
  int next_ = 0;
};

inline Row Result::row(int i) const { return Row(*this, i); }

}  // namespace gen_durable::detail::pg
