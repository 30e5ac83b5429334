// The public checks of connection settings (gen_durable/conninfo.hpp): passwords found and
// masked in both forms of a connection string, and schema names accepted or refused.
#include "gen_durable/conninfo.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gen_durable {
namespace {

TEST(PublicConninfo, FindsAndMasksAPasswordInBothForms) {
  EXPECT_FALSE(ConninfoHasPassword("host=/run/pg dbname=app"));
  EXPECT_FALSE(ConninfoHasPassword("postgresql://app@db/app"));
  EXPECT_TRUE(ConninfoHasPassword("host=db password=hunter2 dbname=app"));
  EXPECT_TRUE(ConninfoHasPassword("postgresql://app:hunter2@db/app"));

  EXPECT_EQ(RedactConninfo("host=db password=hunter2 dbname=app"),
            "host=db password=******** dbname=app");
  EXPECT_EQ(RedactConninfo("postgresql://app:hunter2@db/app"), "postgresql://app:********@db/app");
  EXPECT_EQ(RedactConninfo("host=db dbname=app"), "host=db dbname=app");
}

TEST(PublicConninfo, RedactSecretsMasksThePasswordWhereAMessageQuotesIt) {
  const std::string conninfo = "postgresql://app:hunter2@db/app";
  const std::string masked =
      RedactSecrets("could not parse \"" + conninfo + "\": hunter2 is wrong", conninfo);
  EXPECT_EQ(masked.find("hunter2"), std::string::npos) << masked;
  EXPECT_NE(masked.find("could not parse"), std::string::npos) << masked;
}

TEST(PublicConninfo, SchemaNameProblemAcceptsPlainNamesOnly) {
  EXPECT_EQ(SchemaNameProblem("public"), "");
  EXPECT_EQ(SchemaNameProblem("_jobs2"), "");
  EXPECT_NE(SchemaNameProblem(""), "");
  EXPECT_NE(SchemaNameProblem("1jobs"), "");
  EXPECT_NE(SchemaNameProblem("Jobs"), "");
  EXPECT_NE(SchemaNameProblem("jobs;drop"), "");
  EXPECT_NE(SchemaNameProblem(std::string(64, 'a')), "");
  EXPECT_EQ(SchemaNameProblem(std::string(63, 'a')), "");
}

}  // namespace
}  // namespace gen_durable
