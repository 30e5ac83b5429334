// The SQL of operating a cluster (docs/operations.md): queue state, cancel / retry / delete, info
// on queues and nodes, the history, and the control messages engines receive.
//
// An OpsStore is bound to a schema like Store; it owns its statement texts and runs them on a
// connection the caller provides. None of these statements is on the hot path except
// ReadyCount (once per autoscale interval per autoscaled queue) and CancelRequested (once per
// heartbeat) and the control reads (once per heartbeat, and when woken).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gen_durable/info.hpp"
#include "gen_durable/model/control.hpp"
#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail {

class OpsStore {
 public:
  explicit OpsStore(std::string schema);

  // Persists the paused flag of `queue` and wakes the engines (control channel); a resume also
  // announces the queue's work so idle pickers claim at once.
  void SetPaused(pg::Connection& c, const std::string& queue, bool paused) const;
  // Sets the cluster-wide limit of `queue` (nullopt clears it) and wakes the queue's pickers;
  // returns the limit it replaced (nullopt: none). `limit` must be >= 1 (the table refuses
  // anything else).
  std::optional<int> SetGlobalLimit(pg::Connection& c, const std::string& queue,
                                    std::optional<int> limit) const;
  // Writes the standing scale request of `queue` (for every node, or `node` only) to
  // gd_control and wakes the engines. `concurrency` must be in 1..kMaxConcurrency (the table
  // refuses anything else).
  void RequestScale(pg::Connection& c, const std::string& queue, int concurrency,
                    const std::optional<std::string>& node) const;
  // The scale requests node `node` of engine `engine` may apply, undecoded (see control.hpp).
  std::vector<ControlRow> ControlScales(pg::Connection& c, const std::string& node,
                                        const std::string& engine) const;
  // Records that `engine` applied `request` under its declared configuration `declared`.
  void ControlSeen(pg::Connection& c, const ScaleRequest& request, const std::string& engine,
                   const std::string& declared) const;
  // Deletes the requests for nodes that no longer exist; returns how many.
  std::int64_t ControlPrune(pg::Connection& c) const;
  // The queues paused cluster-wide.
  std::set<std::string> PausedQueues(pg::Connection& c) const;

  std::vector<QueueInfo> Queues(pg::Connection& c) const;
  std::vector<NodeInfo> Nodes(pg::Connection& c) const;
  // Ready rows of `queue` (runnable and due), counted up to `cap`; 0 when the queue is paused.
  std::int64_t ReadyCount(pg::Connection& c, const std::string& queue, int cap) const;

  // Cancels the non-terminal instances matching `filter` (and, with cascade, their
  // descendants, locked level by level in one transaction so that children a commit in
  // flight spawns are cancelled too); running ones are marked and their engines told.
  CancelReport Cancel(pg::Connection& c, const InstanceFilter& filter,
                      const CancelOptions& options) const;
  // Of `ids` held by `node`, those whose cancel was requested.
  std::vector<std::int64_t> CancelRequested(pg::Connection& c, const std::string& node,
                                            const std::vector<std::int64_t>& ids) const;
  // Up to `limit` (nullopt: all) failed / cancelled instances matching `filter` back to
  // runnable (see Client::RetryWhere), skipping those whose unique key another row holds.
  // Throws DatabaseError 23505 when two of them want the same key (retry with limit 1).
  std::vector<std::int64_t> Retry(pg::Connection& c, const InstanceFilter& filter,
                                  std::optional<int> limit) const;
  // Deletes up to `batch` non-executing instances matching `filter`; returns how many.
  std::int64_t Delete(pg::Connection& c, const InstanceFilter& filter, int batch) const;

  std::vector<HistoryEntry> History(pg::Connection& c, std::int64_t id, int limit) const;
  // Deletes up to `limit` history entries older than `retention`; returns how many.
  std::int64_t HistorySweep(pg::Connection& c, Millis retention, int limit) const;

 private:
  pg::Statement Make(const char* name, const char* sql) const;
  // $1..$5 of the filtered statements.
  static pg::Params FilterParams(const InstanceFilter& f);
  // The rows of gd_cancel, sorted.
  static CancelReport Reported(const pg::Result& r);

  std::string schema_;
  pg::Statement set_paused_, request_scale_, control_scales_, control_seen_, control_prune_,
      paused_queues_, queue_counts_, queue_ready_, queue_recent_, queue_state_, nodes_,
      ready_count_, cancel_, cancel_roots_, cancel_children_, cancel_requested_, retry_, delete_,
      history_, history_sweep_;
  pg::Statement set_global_limit_;
};

}  // namespace gen_durable::detail
