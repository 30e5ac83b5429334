// The waiters of one client (Client::Wait): every caller waiting for an instance to end shares
// one listening connection. A thread LISTENs on the schema's wait channel and wakes the
// waiters of each id announced; each waiter then reads its row again (the payload is only a
// hint: anyone who can connect can notify).
//
//   registry.Listen(deadline);                               // before marking the row
//   WaitRegistry::Ticket ticket = registry.Register(id);     // before reading it
//   ... mark the row, read its status ...
//   while (!terminal) { ticket.WaitUntil(next_poll); read the row again; }
//
// Thread-safe. The thread starts with the first Listen and stops with the registry; when its
// connection breaks it reconnects by itself and then wakes every waiter, since announcements
// sent meanwhile were lost.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "gen_durable/pg/connection.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable::detail {

class WaitRegistry {
 public:
  using Clock = std::chrono::steady_clock;
  using Connect = std::function<std::unique_ptr<pg::Connection>()>;

  // `channel`: the wait channel; `connect` opens the listening connection.
  WaitRegistry(std::string channel, Connect connect);
  ~WaitRegistry();
  WaitRegistry(const WaitRegistry&) = delete;
  WaitRegistry& operator=(const WaitRegistry&) = delete;

  // One caller's wait for one instance; unregisters on destruction.
  class Ticket {
   public:
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    // Sleeps until the instance is announced or the listener (re)connected since this ticket
    // was made or last woken, or until `until`. Returns true when woken, false at `until`.
    bool WaitUntil(Clock::time_point until);

   private:
    friend class WaitRegistry;
    Ticket(WaitRegistry* owner, std::int64_t id, std::uint64_t wakes, std::uint64_t epoch)
        : owner_(owner), id_(id), wakes_(wakes), epoch_(epoch) {}
    WaitRegistry* owner_;
    std::int64_t id_;
    std::uint64_t wakes_;  // the announcements of id_ seen
    std::uint64_t epoch_;  // the listener's connections seen
  };

  // Starts the listener on first use and waits (until `until`, at most 5 s) for its LISTEN to
  // take effect, so that an instance marked after this returns is announced; a listener that
  // cannot connect keeps trying in the background while the waiters poll.
  void Listen(Clock::time_point until) GD_EXCLUDES(mu_);
  // Registers a waiter for instance `id`: announcements of `id` from now on wake it.
  Ticket Register(std::int64_t id) GD_EXCLUDES(mu_);

  // True while the listener's LISTEN is in effect.
  bool listening() GD_EXCLUDES(mu_);

 private:
  struct Entry {
    int waiters = 0;
    std::uint64_t wakes = 0;
    CondVar cv;
  };

  void Run();
  void Unregister(std::int64_t id) GD_EXCLUDES(mu_);
  // Wakes every waiter (after a (re)connect).
  void WakeAll() GD_REQUIRES(mu_);

  const std::string channel_;
  const Connect connect_;
  Mutex mu_;
  CondVar state_cv_;  // listening_ and stopping_ changes
  std::unordered_map<std::int64_t, Entry> entries_ GD_GUARDED_BY(mu_);
  std::uint64_t epoch_ GD_GUARDED_BY(mu_) = 0;
  bool listening_ GD_GUARDED_BY(mu_) = false;
  bool stopping_ GD_GUARDED_BY(mu_) = false;
  bool started_ GD_GUARDED_BY(mu_) = false;
  std::thread thread_;  // started under mu_ (started_), joined by the destructor
  // A pipe whose write end the destructor writes to, waking the thread from its wait for
  // notifications at once (a client's destruction, often a process's exit, does not wait).
  int stop_pipe_[2] = {-1, -1};
};

}  // namespace gen_durable::detail
