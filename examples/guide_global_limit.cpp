// Guide example: a cluster-wide concurrency limit per queue. A partner's API takes at most 3
// calls at once from all of our nodes together; each node keeps 8 slots for the queue. The
// snippets of docs/guides/engine.md ("Cluster-wide limit") come from this file.
//
//   example_guide_global_limit DATABASE_URL   runs 12 calls through two engines, then prints
//                                             the most that ran at once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <string>
#include <thread>

namespace gd = gen_durable;
using namespace std::chrono_literals;

std::atomic<int> g_in_call{0};
std::atomic<int> g_most{0};

// One call to the partner's API (here: a sleep, counting the calls in progress).
const auto kPartnerCall = gd::Job<gd::Json>("partner.call")
                              .Queue("partner")
                              .Perform([](const gd::Json&, gd::JobContext&) {
                                const int now = ++g_in_call;
                                int most = g_most.load();
                                while (now > most && !g_most.compare_exchange_weak(most, now)) {
                                }
                                std::this_thread::sleep_for(100ms);
                                --g_in_call;
                                return gd::JobResult::Ok({});
                              })
                              .Register();

gd::EngineOptions NodeOptions(const std::string& database, const std::string& name) {
  gd::EngineOptions opts;
  opts.database = database;
  opts.name = name;
  // 8 slots on this node, at most 3 steps of the queue executing across every node.
  gd::QueueConfig partner{8};
  partner.global_limit = 3;
  opts.queues = {{"default", {10}}, {"partner", partner}};
  return opts;
}

void ChangeTheLimit(gd::Client& client) {
  // At run time, for every node (what `gen_durable scale partner --global 5` does).
  const std::optional<int> before = client.SetQueueGlobalLimit("partner", 5);
  std::cout << "limit was " << before.value_or(0) << ", now 5\n";
  client.SetQueueGlobalLimit("partner", 3);  // back to 3 (std::nullopt removes the limit)
  for (const auto& q : client.Queues()) {
    if (q.global_limit) std::cout << q.name << ": at most " << *q.global_limit << " at once\n";
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " DATABASE_URL\n";
    return 2;
  }
  // Two nodes (in one process here; usually two machines), 16 slots for the queue together.
  auto a = gd::Engine::Start(NodeOptions(argv[1], "node-a"));
  auto b = gd::Engine::Start(NodeOptions(argv[1], "node-b"));
  gd::Client& client = a->client();
  ChangeTheLimit(client);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(*client.Insert(kPartnerCall, gd::Json::object()));
  for (const std::int64_t id : ids) {
    while (!gd::IsTerminalStatus(client.Get(id)->status)) std::this_thread::sleep_for(20ms);
  }
  std::cout << "12 calls done, at most " << g_most.load() << " at once\n";
  b->Stop();
  a->Stop();
  return 0;
}
