// An owned PGresult and its typed row reader.
#include "gen_durable/pg/result.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <charconv>
#include <system_error>
#include <utility>

namespace gen_durable::detail::pg {

namespace {

// libpq answers out-of-range cells with NULL pointers and a notice; fail loudly instead.
void CheckCell(const PGresult* res, int row, int col) {
  const int rows = res != nullptr ? PQntuples(res) : 0;
  const int cols = res != nullptr ? PQnfields(res) : 0;
  if (row < 0 || row >= rows || col < 0 || col >= cols) {
    throw InvalidArgument(
        fmt::format("result cell ({}, {}) is outside a {}x{} result", row, col, rows, cols));
  }
}

std::string ColumnName(const PGresult* res, int col) {
  const char* name = PQfname(res, col);
  return name != nullptr ? name : fmt::format("#{}", col);
}

}  // namespace

Result::Result(pg_result* res) : res_(res) {}

Result::Result(Result&& other) noexcept : res_(std::exchange(other.res_, nullptr)) {}

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    PQclear(res_);
    res_ = std::exchange(other.res_, nullptr);
  }
  return *this;
}

Result::~Result() { PQclear(res_); }

int Result::rows() const { return res_ != nullptr ? PQntuples(res_) : 0; }

int Result::columns() const { return res_ != nullptr ? PQnfields(res_) : 0; }

std::int64_t Result::affected() const {
  if (res_ == nullptr) return 0;
  // "" for commands that report no row count (DDL, LISTEN), which count as 0.
  std::string_view text = PQcmdTuples(res_);
  std::int64_t n = 0;
  std::from_chars(text.data(), text.data() + text.size(), n);
  return n;
}

bool Result::IsNull(int row, int col) const {
  CheckCell(res_, row, col);
  return PQgetisnull(res_, row, col) == 1;
}

std::string_view Result::Text(int row, int col) const {
  if (IsNull(row, col)) return {};
  return std::string_view(PQgetvalue(res_, row, col),
                          static_cast<std::size_t>(PQgetlength(res_, row, col)));
}

std::int64_t Result::Int64(int row, int col) const {
  if (IsNull(row, col)) {
    throw InvalidArgument(
        fmt::format("column {} is NULL, expected an integer", ColumnName(res_, col)));
  }
  std::string_view text = Text(row, col);
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw InvalidArgument(
        fmt::format("column {}: '{}' is not a 64-bit integer", ColumnName(res_, col), text));
  }
  return v;
}

double Result::Double(int row, int col) const {
  if (IsNull(row, col)) {
    throw InvalidArgument(
        fmt::format("column {} is NULL, expected a number", ColumnName(res_, col)));
  }
  std::string_view text = Text(row, col);
  double v = 0;
  // from_chars accepts Postgres's "NaN", "Infinity" and "-Infinity" (case-insensitively).
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw InvalidArgument(
        fmt::format("column {}: '{}' is not a number", ColumnName(res_, col), text));
  }
  return v;
}

bool Result::Bool(int row, int col) const {
  if (IsNull(row, col)) {
    throw InvalidArgument(
        fmt::format("column {} is NULL, expected a boolean", ColumnName(res_, col)));
  }
  std::string_view text = Text(row, col);
  if (text == "t" || text == "true") return true;
  if (text == "f" || text == "false") return false;
  throw InvalidArgument(
      fmt::format("column {}: '{}' is not a boolean", ColumnName(res_, col), text));
}

std::optional<std::string> Result::OptString(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return String(row, col);
}

std::optional<std::int64_t> Result::OptInt64(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Int64(row, col);
}

int Result::ColumnIndex(const char* name) const {
  return res_ != nullptr ? PQfnumber(res_, name) : -1;
}

std::string Result::Name(int col) const { return ColumnName(res_, col); }

int Result::Column(std::string_view name) const {
  // An exact match, unlike PQfnumber, which folds unquoted names to lower case.
  for (int col = 0; col < columns(); ++col) {
    const char* have = PQfname(res_, col);
    if (have != nullptr && name == have) return col;
  }
  throw InvalidArgument(fmt::format("the result has no column named '{}'", name));
}

std::string_view Row::StringView(int col) const {
  if (result_->IsNull(row_, col)) {
    throw InvalidArgument(fmt::format("column {} is NULL, expected text", result_->Name(col)));
  }
  return result_->Text(row_, col);
}

}  // namespace gen_durable::detail::pg
