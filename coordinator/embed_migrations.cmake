# Writes OUT: a C++ source defining scion::coord::EmbeddedMigrations() from the FILES (sorted
# schema/NNN_name.sql). Run by the build as `cmake -P`.
string(REPLACE "|" ";" FILES "${FILES}")
set(body "")
foreach(f ${FILES})
  get_filename_component(name ${f} NAME)
  file(READ ${f} sql)
  string(APPEND body "      {\"${name}\", R\"scion_sql(${sql})scion_sql\"},\n")
endforeach()
file(WRITE ${OUT} "// Generated from schema/*.sql by coordinator/embed_migrations.cmake. Do not edit.
#include \"coordinator/migrations.h\"

namespace scion::coord {

const std::vector<Migration>& EmbeddedMigrations() {
  static const std::vector<Migration> migrations = {
${body}  };
  return migrations;
}

}  // namespace scion::coord
")
