// Schema migrations: numbered SQL scripts (schema/NNN_name.sql), embedded into the binary at build
// time and applied in order at start. Each runs once, recorded in schema_migrations.
#pragma once

#include <string>
#include <vector>

namespace scion::coord {

struct Migration {
  std::string name;  // file name, "001_initial.sql"; the leading number is the version
  std::string sql;
};

// The migrations compiled into this binary, sorted by version.
const std::vector<Migration>& EmbeddedMigrations();

}  // namespace scion::coord
