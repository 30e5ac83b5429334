// Schema version 9: waiting for a result (Client::Wait) woken by a notification.
#include "gen_durable/schema/versions.hpp"

namespace gen_durable::detail::ddl {

// Version 9: a caller waiting for an instance to end marks its row (`awaited`), and a row that
// is marked and ends notifies the wait channel with its id. Rows nobody waits for cost what the
// trigger's WHEN clause costs (evaluated only for statements that set `status`, like
// gd_child_terminated's): no function call, no notification, so the hot path keeps committing
// without the notification queue's lock. One trigger covers every way a row ends (the group
// commit, cancel, the reaper, a rate limit that fails a row, a release on stop) and any added
// later.
// The payload is a hint: channels are open to every role that can connect, so a waiter reads
// the row again and never trusts what it was told (docs/security.md, "Control plane").
// A constant default: adding the column rewrites nothing.
const char* const kV9 = R"SQL(
ALTER TABLE {s}.gd_instances ADD COLUMN awaited boolean NOT NULL DEFAULT false;

CREATE FUNCTION {s}.gd_awaited_ended() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM pg_notify('{w}', NEW.id::text);
  RETURN NULL;
END
$fn$;

CREATE TRIGGER gd_awaited_ended AFTER UPDATE OF status ON {s}.gd_instances
  FOR EACH ROW
  WHEN (NEW.awaited AND NEW.status IN ('done', 'failed', 'cancelled')
        AND OLD.status NOT IN ('done', 'failed', 'cancelled'))
  EXECUTE FUNCTION {s}.gd_awaited_ended();
)SQL";

}  // namespace gen_durable::detail::ddl
