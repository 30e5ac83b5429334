// The typed row reader over results made without a server (libpq can build a PGresult itself):
// by name, in column order, NULL as std::optional, and the failures
// (src/gen_durable/pg/result.hpp).
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "gen_durable/pg/result.hpp"

namespace gen_durable::detail::pg {
namespace {

// A text-format result with the given column names and rows (nullopt: NULL).
Result MakeResult(const std::vector<std::string>& names,
                  const std::vector<std::vector<std::optional<std::string>>>& rows) {
  PGresult* res = PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK);
  std::vector<PGresAttDesc> attrs(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    attrs[i] = PGresAttDesc{};
    attrs[i].name = const_cast<char*>(names[i].c_str());
    attrs[i].format = 0;
  }
  EXPECT_EQ(PQsetResultAttrs(res, static_cast<int>(attrs.size()), attrs.data()), 1);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (std::size_t c = 0; c < rows[r].size(); ++c) {
      const auto& v = rows[r][c];
      std::vector<char> buf(v ? v->begin() : std::string::const_iterator{},
                            v ? v->end() : std::string::const_iterator{});
      EXPECT_EQ(PQsetvalue(res, static_cast<int>(r), static_cast<int>(c),
                           v ? (buf.empty() ? const_cast<char*>("") : buf.data()) : nullptr,
                           v ? static_cast<int>(v->size()) : -1),
                1);
    }
  }
  return Result(res);
}

TEST(PgRow, ReadsByName) {
  Result r = MakeResult({"id", "Name", "score", "ok", "note"},
                        {{"42", "alpha", "1.5", "t", std::nullopt}});
  ASSERT_EQ(r.rows(), 1);
  const Row row = r.row(0);
  EXPECT_EQ(row.Get<std::int64_t>("id"), 42);
  EXPECT_EQ(row.Get<int>("id"), 42);
  EXPECT_EQ(row.Get<std::string>("Name"), "alpha");  // exact, not case-folded
  EXPECT_EQ(row.Get<std::string_view>("Name"), "alpha");
  EXPECT_DOUBLE_EQ(row.Get<double>("score"), 1.5);
  EXPECT_TRUE(row.Get<bool>("ok"));
  EXPECT_EQ(row.Get<std::optional<std::string>>("note"), std::nullopt);
  EXPECT_EQ(row.Get<std::optional<std::int64_t>>("id"), 42);
  EXPECT_TRUE(row.IsNull("note"));
  EXPECT_FALSE(row.IsNull("id"));
}

TEST(PgRow, ReadsInColumnOrder) {
  Result r = MakeResult({"a", "?column?", "?column?"}, {{"1", "f", std::nullopt}, {"2", "t", "x"}});
  Row first = r.row(0);
  EXPECT_EQ(first.Next<std::int64_t>(), 1);
  EXPECT_FALSE(first.Next<bool>());
  EXPECT_EQ(first.Next<std::optional<std::string>>(), std::nullopt);
  Row second = r.row(1);
  second.Skip(2);
  EXPECT_EQ(second.Next<std::optional<std::string>>(), "x");
}

TEST(PgRow, RefusesNullAndBadValuesForPlainTypes) {
  Result r = MakeResult({"n", "text", "empty"}, {{std::nullopt, "abc", ""}});
  const Row row = r.row(0);
  EXPECT_THROW(row.Get<std::string>("n"), InvalidArgument);
  EXPECT_THROW(row.Get<std::int64_t>("n"), InvalidArgument);
  EXPECT_THROW(row.Get<bool>("n"), InvalidArgument);
  EXPECT_THROW(row.Get<std::int64_t>("text"), InvalidArgument);
  EXPECT_THROW(row.Get<double>("text"), InvalidArgument);
  EXPECT_THROW(row.Get<bool>("text"), InvalidArgument);
  EXPECT_EQ(row.Get<std::string>("empty"), "");  // empty text is not NULL
  EXPECT_EQ(row.Get<std::optional<std::string>>("empty"), "");
}

TEST(PgRow, UnknownColumnsAndCellsOutsideTheResultThrow) {
  Result r = MakeResult({"id"}, {{"1"}});
  Row row = r.row(0);
  EXPECT_THROW(row.Get<std::int64_t>("ID"), InvalidArgument);
  EXPECT_THROW(row.Get<std::int64_t>("missing"), InvalidArgument);
  row.Skip();
  EXPECT_THROW(row.Next<std::int64_t>(), InvalidArgument);
  EXPECT_THROW(r.row(1).Get<std::int64_t>("id"), InvalidArgument);
}

}  // namespace
}  // namespace gen_durable::detail::pg
