// Uses the installed package: defines a job and validates engine options, without a database.
#include <gen_durable/gen_durable.hpp>
#include <iostream>

int main() {
  auto job = gen_durable::Job<gen_durable::Json>("consumer.hello")
                 .Perform([](const gen_durable::Json&, gen_durable::JobContext&) {
                   return gen_durable::JobResult::Ok({{"hello", "world"}});
                 })
                 .Build();
  gen_durable::EngineOptions opts;
  opts.database = "host=/nonexistent dbname=none";
  opts.machines = {job};
  try {
    opts.lease_ttl = gen_durable::Millis{-1};
    gen_durable::Engine::Create(opts);
    std::cerr << "invalid options were accepted\n";
    return 1;
  } catch (const gen_durable::ConfigError& e) {
    std::cout << "consumer ok: " << job.name() << " v" << job.version()
              << "; rejected: " << e.what() << "\n";
  }
  return 0;
}
