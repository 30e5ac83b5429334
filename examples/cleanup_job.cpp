// The seed's `Cleanup` job in C++: remove a path, with retries for free.
//
//   example_cleanup_job DATABASE_URL PATH
#include <chrono>
#include <filesystem>
#include <gen_durable/gen_durable.hpp>
#include <iostream>

namespace gd = gen_durable;

struct CleanupArgs {
  std::string path;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CleanupArgs, path)

const auto kCleanup = gd::Job<CleanupArgs>("Cleanup")
                          .Perform([](const CleanupArgs& args, gd::JobContext&) {
                            if (args.path.empty()) return gd::JobResult::Cancel("no path given");
                            std::filesystem::remove_all(args.path);  // throws -> retried
                            return gd::JobResult::Ok();
                          })
                          .Register();

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: example_cleanup_job DATABASE_URL PATH\n";
    return 2;
  }
  gd::EngineOptions opts;
  opts.database = argv[1];
  auto engine = gd::Engine::Start(opts);

  auto id = engine->client().Insert(kCleanup, CleanupArgs{argv[2]});
  if (!id) return 1;
  auto info = engine->client().Wait(*id, std::chrono::minutes(1));
  if (!info) {
    std::cerr << "cleanup: " << info.error().message << "\n";
    return 1;
  }
  if (info->status != "done") {
    std::cerr << "cleanup failed: " << info->last_error.value_or("?") << "\n";
    return 1;
  }
  std::cout << "removed " << argv[2] << "\n";
  return 0;
}
