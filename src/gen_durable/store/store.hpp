// Every SQL statement the engine runs, one named function each. Nothing else writes SQL.
//
// A Store is bound to a schema; it owns the statement texts (with the schema substituted) and
// runs them on a connection the caller provides. Hot statements name the index serving them.
// Each statement's text is a named constant beside the method that runs it: store.cpp (the hot
// loop), inserts.cpp, maintenance.cpp, node_store.cpp and reads.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gen_durable/info.hpp"
#include "gen_durable/model/rows.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/pg/connection.hpp"
#include "gen_durable/store/row_codec.hpp"

namespace gen_durable::detail {

class Store {
 public:
  explicit Store(std::string schema);
  const std::string& schema() const { return schema_; }
  // The LISTEN/NOTIFY channel announcing new ready work (payload: the queue name).
  const std::string& channel() const { return channel_; }

  // Slots per partition key prefix (default 1 per key); read by Claim.
  void SetPartitionLimits(const std::map<std::string, int>& limits);

  // --- inserts ---
  // Inserts one row; nullopt when its unique key is held (duplicate). `ad_hoc` runs the
  // statement unnamed (for a borrowed caller connection that must not keep our statements).
  // Without `ready_queues` the statement announces the rows that are ready now on the channel,
  // in its own transaction (delivered at that transaction's commit: right for a caller's
  // transaction). With it, the statement announces nothing and adds the queues to announce to
  // `ready_queues` (each once), for AnnounceReady after the commit: a transaction that sends a
  // notification holds a cluster-wide lock through its commit's WAL flush, so notifying inserts
  // commit one at a time (docs/performance.md, "The cost of NOTIFY").
  std::optional<std::int64_t> InsertOne(pg::Connection& c, const NewInstance& row,
                                        bool ad_hoc = false,
                                        std::vector<std::string>* ready_queues = nullptr) const;
  // Inserts a batch atomically, dropping rows whose unique key is held; returns one entry per
  // request, in request order (nullopt: dropped as a duplicate). One statement, or, past
  // kMaxStatementJsonBytes, several in one transaction (one round trip). `ready_queues` as
  // for InsertOne.
  std::vector<std::optional<std::int64_t>> InsertBatch(
      pg::Connection& c, const std::vector<NewInstance>& rows, bool ad_hoc = false,
      std::vector<std::string>* ready_queues = nullptr) const;
  // Announces ready work in `queues` on the channel, in a transaction of its own whose commit
  // does not wait for the WAL flush, so it holds the notification lock only briefly. A lost
  // announcement costs an engine one poll interval, never a row.
  void AnnounceReady(pg::Connection& c, const std::vector<std::string>& queues) const;

  // --- the hot loop ---
  // Claims up to `limit` ready rows; with `promote`, first moves due scheduled rows of the
  // queue to runnable in the same round trip. `claim_no` numbers this node's claim statements
  // (1, 2, ...): each claimed row's lease_seq grows by it (see gd_claim). A keyed row whose key
  // another claim holds at that moment is skipped and listed in `contended`; it never fails the
  // batch.
  ClaimBatch Claim(pg::Connection& c, const std::string& queue, int limit, const std::string& node,
                   Millis lease_ttl, const std::vector<std::string>& machines, bool promote,
                   std::int64_t claim_no) const;
  // Returns the outcomes that committed (the others were stale). With `history`, each step
  // outcome (a row with ran_step) also gets its gd_history entry.
  std::vector<CommittedOutcome> CommitOutcomes(pg::Connection& c,
                                               const std::vector<OutcomeRow>& rows,
                                               const std::string& node, Millis lease_ttl,
                                               bool history) const;
  // Extends the leases of `ids` held by `node`; returns how many were extended.
  std::int64_t Heartbeat(pg::Connection& c, const std::string& node,
                         const std::vector<std::int64_t>& ids, Millis lease_ttl) const;
  // Hands un-started claims back (attempt unchanged). A row claimed again since (a lease lost
  // and re-claimed, by this node or another) is left alone. Returns the count released.
  std::int64_t ReleaseClaims(pg::Connection& c, const std::string& node,
                             const std::vector<ClaimRef>& claims) const;

  // --- maintenance ---
  std::vector<ReapedRow> ReapExpired(pg::Connection& c, int limit) const;
  // Wakes parked rows whose await timeout or join deadline passed.
  std::vector<ParkedWake> ReapParked(pg::Connection& c, int limit) const;
  // Reclaims every row held by a dead node (like the reaper, without waiting for the lease).
  std::vector<ReapedRow> ReclaimNode(pg::Connection& c, const std::string& node) const;
  std::int64_t GcSweep(pg::Connection& c, Millis retention, int limit) const;

  // --- nodes ---
  void NodeUpsert(pg::Connection& c, const std::string& id, const std::string& engine,
                  const std::string& host, int pid, const std::string& proc_start,
                  const std::string& pid_ns, Millis heartbeat_interval, Millis lease_ttl,
                  const std::string& queues_json) const;
  void NodeHeartbeat(pg::Connection& c, const std::string& id) const;
  void NodeDelete(pg::Connection& c, const std::string& id) const;
  // Heartbeat intervals a node's row may lag before the node counts as silent (NodeRow); the
  // lag must also exceed the node's lease ttl.
  static constexpr int kSilentBeats = 3;
  // The nodes of host name `host`; a node that did not record its heartbeat interval or lease
  // ttl is judged by `heartbeat_interval` and `lease_ttl`.
  std::vector<NodeRow> NodesOnHost(pg::Connection& c, const std::string& host,
                                   Millis heartbeat_interval, Millis lease_ttl) const;
  // Deletes node rows not heartbeated for `age`; returns their ids.
  std::vector<std::string> NodesPrune(pg::Connection& c, Millis age) const;

  // --- signals ---
  // SQLSTATE raised by gd_signal when the target is unknown or terminal.
  static constexpr const char* kNoTargetState = "GD404";
  // Delivers a signal through gd_signal (by id, or by unique key); returns the signal id.
  std::int64_t Signal(pg::Connection& c, std::optional<std::int64_t> id,
                      const std::optional<std::string>& key, const std::string& name,
                      const std::string& payload, const std::optional<std::string>& dedup) const;

  // --- reads ---
  std::optional<InstanceInfo> Get(pg::Connection& c, std::int64_t id) const;
  std::vector<InstanceInfo> List(pg::Connection& c, const ListFilter& f) const;
  StatusCounts Counts(pg::Connection& c) const;

 private:
  pg::Statement Make(const char* name, const std::string& sql) const;
  // Each prepares the statements of its file (see above); called by the constructor.
  void MakeInsertStatements();
  void MakeHotLoopStatements();
  void MakeMaintenanceStatements();
  void MakeNodeStatements();
  void MakeReadStatements();
  // Sets each instance's children ids (one query for all of them).
  void FillChildren(pg::Connection& c, std::span<InstanceInfo> infos) const;

  std::string schema_;
  std::string channel_;
  std::string partition_limits_;           // JSON object prefix -> slots
  pg::Statement insert_batch_, announce_;  // inserts.cpp
  pg::Statement promote_, claim_async_, claim_, commit_, wake_parked_, spawn_children_, heartbeat_,
      release_;                                           // store.cpp
  pg::Statement reap_, reclaim_node_, reap_parked_, gc_;  // maintenance.cpp
  pg::Statement node_upsert_, node_heartbeat_, node_delete_, nodes_on_host_,
      nodes_prune_;                                                     // node_store.cpp
  pg::Statement get_, children_, list_, counts_, signal_, signals_of_;  // reads.cpp
};

}  // namespace gen_durable::detail
