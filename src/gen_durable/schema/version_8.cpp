// Schema version 8: periodic schedules.
#include "gen_durable/schema/versions.hpp"

namespace gen_durable::detail::ddl {

// Version 8: gd_schedules, one row per schedule name, shared by every node carrying it. A node
// starting writes the definition (the instance's machine, resolved version, first step, queue,
// priority, max_attempts and state: every node fires the same one, the newest written); firing
// a slot is one statement that moves last_fired forward from the value the node read and
// inserts the slot's instance from the row, so no two nodes fire a slot and a crash cannot
// separate the two writes. No function: the engine role writes the table directly.
const char* const kV8 = R"SQL(
CREATE TABLE {s}.gd_schedules (
  name         text PRIMARY KEY,
  cron         text NOT NULL,
  zone         text NOT NULL DEFAULT 'UTC',
  fsm          text NOT NULL,
  fsm_version  integer NOT NULL DEFAULT 1,
  step         text NOT NULL,
  queue        text NOT NULL DEFAULT 'default',
  priority     integer NOT NULL DEFAULT 0,
  max_attempts integer,
  state        jsonb NOT NULL DEFAULT '{}',
  missed       text NOT NULL DEFAULT 'skip' CHECK (missed IN ('skip', 'catch_up')),
  catch_up_max integer NOT NULL DEFAULT 1 CHECK (catch_up_max >= 0),
  -- the newest slot inserted (or passed over as missed); NULL: none yet, slots count from
  -- created_at
  last_fired   timestamptz,
  next_fire    timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
)SQL";

}  // namespace gen_durable::detail::ddl
