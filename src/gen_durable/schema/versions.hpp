// The DDL of each schema version, applied in order by Migrate (migrations.cpp). "{s}" stands for
// the quoted schema name, "{c}", "{k}" and "{w}" for its channels (WithSchema). A version, once
// released, never changes: later changes are new versions.
#pragma once

namespace gen_durable::detail::ddl {

extern const char* const kV1;  // versions_1_2.cpp
extern const char* const kV2;
extern const char* const kV3;  // versions_3_5.cpp
extern const char* const kV4;
extern const char* const kV5;
extern const char* const kV6;  // version_6.cpp
extern const char* const kV7;  // version_7.cpp
extern const char* const kV8;  // version_8.cpp
extern const char* const kV9;  // version_9.cpp

}  // namespace gen_durable::detail::ddl
