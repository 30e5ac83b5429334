// Guide example: unique keys and partition keys. The snippets of docs/guides/keys.md come from
// this file.
//
//   example_guide_keys                  lists the machines, then exits
//   example_guide_keys DATABASE_URL     runs them through an engine (schema guide_keys)
#include <atomic>
#include <chrono>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace gd = gen_durable;
using namespace std::chrono_literals;

// --- machines ---

struct SyncArgs {
  int customer = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SyncArgs, customer)

const auto kSync = gd::Job<SyncArgs>("guide.sync_customer")
                       .Perform([](const SyncArgs& a, gd::JobContext&) {
                         std::this_thread::sleep_for(10ms);  // talk to the CRM
                         return gd::JobResult::Ok({{"synced", a.customer}});
                       })
                       .Register();

struct Welcome {
  int user = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Welcome, user)

const auto kWelcome = gd::Job<Welcome>("guide.welcome_mail")
                          .Perform([](const Welcome& w, gd::JobContext&) {
                            return gd::JobResult::Ok({{"mailed", w.user}});
                          })
                          .Register();

struct Transfer {
  std::string from;
  std::string to;
  int cents = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Transfer, from, to, cents)

void Debit(const std::string& account, int cents) { std::cout << account << " -" << cents << "\n"; }
void Credit(const std::string& account, int cents) {
  std::cout << account << " +" << cents << "\n";
}

// Inserted with partition key "account:<from>": the debit runs while no other step of that
// account does. The credit then runs in the partition of the receiving account, and the
// notification in none.
const auto kTransfer =
    gd::Machine<Transfer>("guide.transfer")
        .Step("start",
              [](gd::StepContext<Transfer>& ctx) {
                Debit(ctx.state().from, ctx.state().cents);
                return gd::Next("credit", ctx.state()).PartitionKey("account:" + ctx.state().to);
              })
        .Step("credit",
              [](gd::StepContext<Transfer>& ctx) {
                Credit(ctx.state().to, ctx.state().cents);
                return gd::Next("notify", ctx.state()).ReleasePartition();
              })
        .Step("notify",
              [](gd::StepContext<Transfer>& ctx) {
                return gd::Done({{"moved", ctx.state().cents}});
              })
        .Register();

// --- running it ---

// Waits (at most a minute) until the instance has ended: Client::Wait is woken as the commit
// that ends it happens.
gd::InstanceInfo WaitTerminal(gd::Client& client, std::int64_t id) {
  gd::Result<gd::InstanceInfo> info = client.Wait(id, std::chrono::minutes(1));
  if (!info) throw std::runtime_error(info.error().message);
  return *info;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cout << "usage: example_guide_keys DATABASE_URL\nmachines: " << kSync.name() << " "
              << kWelcome.name() << " " << kTransfer.name() << "\n";
    return 0;
  }
  gd::ClientOptions co;
  co.database = argv[1];
  co.schema = "guide_keys";
  gd::Client::Connect(co)->Migrate();  // the inserts below run before the engine starts

  gd::EngineOptions opts;
  opts.database = argv[1];
  opts.schema = "guide_keys";
  opts.queues = {{"default", {8}}};
  // Keys starting with "stripe:" may run up to 100 steps at once each; others one.
  opts.partition_limits = {{"stripe:", 100}};
  auto engine = gd::Engine::Create(opts);
  std::atomic<int> contended{0};
  engine->telemetry().Attach("partition.contended", [&contended](const gd::TelemetryEvent& e) {
    contended += static_cast<int>(e.measurements.at("count"));  // another node won the slot
  });
  gd::Client& client = engine->client();

  // At most one sync per customer is queued, running or parked at a time.
  gd::InsertOptions one_per_customer;
  one_per_customer.unique_key = "sync:customer-7";
  gd::Result<std::int64_t> first = client.Insert(kSync, SyncArgs{7}, one_per_customer);
  gd::Result<std::int64_t> again = client.Insert(kSync, SyncArgs{7}, one_per_customer);
  if (!again && again.code() == gd::ErrorCode::kDuplicate) {
    std::cout << "already queued: " << again.error().message << "\n";
  }

  // The welcome mail goes out once per user, ever: the key is also held once it is done.
  gd::InsertOptions once_ever;
  once_ever.unique_key = "welcome:user-7";
  once_ever.unique_scope = {"scheduled",       "runnable",          "executing",
                            "awaiting_signal", "awaiting_children", "done"};
  gd::Result<std::int64_t> welcome = client.Insert(kWelcome, Welcome{7}, once_ever);

  // A batch: requests whose key is held (here, by an earlier request) are dropped.
  std::vector<gd::InsertRequest> batch;
  for (int customer : {1, 2, 2, 3, 7}) {
    gd::InsertRequest request{"guide.sync_customer", std::nullopt, {}};
    request.options.state = SyncArgs{customer};
    request.options.unique_key = "sync:customer-" + std::to_string(customer);
    batch.push_back(std::move(request));
  }
  std::vector<std::int64_t> ids = client.InsertAll(batch);  // 3 ids: customers 1, 2 and 3
  std::cout << "batch of " << batch.size() << " inserted " << ids.size() << "\n";

  // Transfers touching account 1 never run a step on it at the same time.
  gd::InsertOptions serial;
  serial.partition_key = "account:1";  // the account the first step writes to
  std::vector<std::int64_t> transfers;
  for (int i = 0; i < 3; ++i) {
    gd::Result<std::int64_t> t = client.Insert(kTransfer, Transfer{"1", "2", 100 + i}, serial);
    if (t) transfers.push_back(*t);
  }

  engine->Start();
  if (!first || transfers.size() != 3) return 1;
  WaitTerminal(client, *first);
  if (welcome) WaitTerminal(client, *welcome);  // a second run of this program finds it done
  for (std::int64_t id : ids) WaitTerminal(client, id);
  for (std::int64_t id : transfers) WaitTerminal(client, id);
  gd::Result<std::int64_t> second_welcome = client.Insert(kWelcome, Welcome{7}, once_ever);
  std::cout << "second welcome: "
            << (second_welcome ? "inserted" : gd::ErrorCodeName(second_welcome.code())) << "\n";
  std::cout << "partition claims contended: " << contended.load() << "\n";
  engine->Stop();
  return 0;
}
