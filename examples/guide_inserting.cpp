// Guide example: inserting instances and reading them back with the Client. The snippets of
// docs/guides/inserting.md come from this file.
//
//   example_guide_inserting                 builds the machine, then exits
//   example_guide_inserting DATABASE_URL    inserts into schema "guide_inserting" and reads back
#include <gen_durable/gen_durable.hpp>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>  // Debian: /usr/include/postgresql/libpq-fe.h
#endif

#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gd = gen_durable;
using namespace std::chrono_literals;

struct Invoice {
  int invoice = 0;
  int amount_cents = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Invoice, invoice, amount_cents)

const auto kInvoice = gd::Job<Invoice>("guide.invoice")
                          .Queue("billing")
                          .Perform([](const Invoice& inv, gd::JobContext&) {
                            return gd::JobResult::Ok({{"sent", inv.invoice}});
                          })
                          .Register();

// Runs `sql` on the application's own connection; returns false (and says why) on failure.
bool Run(PGconn* conn, const char* sql) {
  PGresult* res = PQexec(conn, sql);
  const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
  if (!ok) std::cerr << sql << ": " << PQerrorMessage(conn);
  PQclear(res);
  return ok;
}

// Inserts invoice `number` and its job in one transaction of the application's connection.
std::optional<std::int64_t> CreateInvoice(gd::Client& client, PGconn* app, int number) {
  if (!Run(app, "BEGIN")) return std::nullopt;
  const std::string row =
      "INSERT INTO guide_inserting.invoices VALUES (" + std::to_string(number) + ")";
  if (!Run(app, row.c_str())) {
    Run(app, "ROLLBACK");
    return std::nullopt;
  }
  gd::InsertOptions job;
  job.state = Invoice{number, 1200};
  gd::Result<std::int64_t> id = client.InsertWith(app, kInvoice, job);  // joins the transaction
  if (!id || !Run(app, "COMMIT")) {
    Run(app, "ROLLBACK");
    return std::nullopt;
  }
  return *id;  // the job exists if and only if the invoice row does
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cout << "usage: example_guide_inserting DATABASE_URL\njob: " << kInvoice.name() << "\n";
    return 0;
  }

  // --- connect and migrate ---
  gd::ClientOptions co;
  co.database = argv[1];
  co.schema = "guide_inserting";  // every table in this Postgres schema (default "public")
  co.pool_size = 4;               // connections kept open for concurrent calls
  std::unique_ptr<gd::Client> client = gd::Client::Connect(co);
  client->Migrate();  // applies what is missing; safe to run from several processes at once

  // --- one instance ---
  gd::Result<std::int64_t> id = client->Insert(kInvoice, Invoice{1001, 4999});
  if (!id) {
    std::cerr << "refused: " << gd::ErrorCodeName(id.code()) << ": " << id.error().message << "\n";
    return 1;
  }
  std::cout << "inserted #" << *id << "\n";

  // --- options: queue, priority, scheduling, attempts ---
  gd::InsertOptions urgent;
  urgent.queue = "billing-urgent";  // default: the machine's queue
  urgent.priority = -10;            // lower runs first (default 0)
  urgent.max_attempts = 3;          // default: the machine's
  auto first = client->Insert(kInvoice, Invoice{1002, 100}, urgent);

  gd::InsertOptions later;
  later.schedule_in = 5min;  // eligible at the database's now() + 5 minutes
  auto reminder = client->Insert(kInvoice, Invoice{1003, 100}, later);

  gd::InsertOptions tomorrow;
  tomorrow.schedule_at = std::chrono::system_clock::now() + 24h;  // an absolute time point
  auto dunning = client->Insert(kInvoice, Invoice{1004, 100}, tomorrow);

  // --- by name, with JSON state ---
  gd::InsertOptions by_name;
  by_name.state = {{"invoice", 1005}, {"amount_cents", 250}};
  auto named = client->Insert("guide.invoice", by_name);

  // --- a batch in one statement ---
  std::vector<gd::InsertRequest> batch;
  for (int n = 0; n < 100; ++n) {
    gd::InsertRequest request;
    request.fsm = "guide.invoice";
    request.options.state = Invoice{2000 + n, 500};
    batch.push_back(std::move(request));
  }
  std::vector<std::int64_t> ids = client->InsertAll(batch);  // in request order
  if (!first || !reminder || !dunning || !named || ids.size() != batch.size()) return 1;

  // --- transactional enqueue on the application's own connection ---
  PGconn* app = PQconnectdb(argv[1]);
  if (PQstatus(app) != CONNECTION_OK ||
      !Run(app, "CREATE TABLE IF NOT EXISTS guide_inserting.invoices (number int)")) {
    std::cerr << "cannot use the application connection\n";
    PQfinish(app);
    return 1;
  }
  std::optional<std::int64_t> with_invoice = CreateInvoice(*client, app, 3001);
  PQfinish(app);

  // --- reading back ---
  if (std::optional<gd::InstanceInfo> info = client->Get(*id)) {
    std::cout << "#" << info->id << " " << info->fsm << " is " << info->status << " at step "
              << info->step << ", state " << info->state.dump() << "\n";
  }

  gd::ListFilter filter;
  filter.status = "runnable";
  filter.queue = "billing";
  filter.limit = 5;
  for (const gd::InstanceInfo& info : client->List(filter)) {  // newest first
    std::cout << "  #" << info.id << " eligible at " << info.eligible_at << "\n";
  }

  gd::StatusCounts counts = client->Counts();
  std::cout << "runnable in all queues: " << counts.total["runnable"] << "\n";
  for (const auto& [queue, by_status] : counts.queues) {
    for (const auto& [status, n] : by_status)
      std::cout << "  " << queue << " " << status << " " << n << "\n";
  }
  std::cout << "transactional insert: " << (with_invoice ? std::to_string(*with_invoice) : "none")
            << "; schema version " << client->SchemaVersion() << "\n";
  return 0;
}
