// Guide example: child instances and the join barrier. The snippets of docs/guides/children.md
// come from this file.
//
//   example_guide_children                  lists the machines, then exits
//   example_guide_children DATABASE_URL     runs them through an engine (schema guide_children)
#include <chrono>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace gd = gen_durable;
using namespace std::chrono_literals;

// --- the child: an ordinary job ---

struct Resize {
  std::string image;
  int width = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Resize, image, width)

const auto kResize =
    gd::Job<Resize>("guide.resize")
        .MaxAttempts(3)
        .Perform([](const Resize& r, gd::JobContext&) {
          if (r.image.ends_with(".psd")) {
            return gd::JobResult::Cancel("cannot read " + r.image);
          }
          return gd::JobResult::Ok({{"thumbnail", r.image + "@" + std::to_string(r.width)}});
        })
        .Register();

// --- the parent: fan out, then join ---

struct Album {
  std::string name;
  std::vector<std::string> images;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Album, name, images)

// One child per image; the children are inserted and the album parks, in one transaction.
gd::Outcome FanOut(gd::StepContext<Album>& ctx) {
  std::vector<gd::InsertRequest> children;
  for (const std::string& image : ctx.state().images) {
    gd::InsertRequest child;
    child.fsm = "guide.resize";
    child.options.state = Resize{image, 640};
    // The same image twice in one album: the second child is dropped and not waited for.
    child.options.unique_key = "resize:" + ctx.state().name + ":" + image;
    children.push_back(std::move(child));
  }
  return gd::ScheduleChildren("publish", std::move(children), ctx.state());
}

// Runs once every child is terminal, whether it succeeded or not.
gd::Outcome Publish(gd::StepContext<Album>& ctx) {
  gd::Json thumbnails = gd::Json::array();
  gd::Json skipped = gd::Json::array();
  for (const gd::ChildResult& child : ctx.children()) {
    if (child.status == "done") {
      thumbnails.push_back(child.result["thumbnail"]);
    } else {  // failed or cancelled: last_error says why
      skipped.push_back({{"id", child.id}, {"error", child.last_error.value_or("")}});
    }
  }
  return gd::Done({{"album", ctx.state().name}, {"thumbnails", thumbnails}, {"skipped", skipped}});
}

const auto kAlbum =
    gd::Machine<Album>("guide.album").Step("start", FanOut).Step("publish", Publish).Register();

// --- k of n, with a deadline ---

struct Lookup {
  std::string key;
  int replicas = 5;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Lookup, key, replicas)

const auto kAskReplica = gd::Job<gd::Json>("guide.ask_replica")
                             .Perform([](const gd::Json& args, gd::JobContext&) {
                               const int replica = args.value("replica", 0);
                               std::this_thread::sleep_for(std::chrono::milliseconds(20 * replica));
                               return gd::JobResult::Ok({{"replica", replica}, {"value", 7}});
                             })
                             .Register();

// Asks every replica and goes on with the first three answers, or with what is there at 10 s.
gd::Outcome AskReplicas(gd::StepContext<Lookup>& ctx) {
  std::vector<gd::InsertRequest> asks;
  for (int replica = 0; replica < ctx.state().replicas; ++replica) {
    gd::InsertRequest ask;
    ask.fsm = "guide.ask_replica";
    ask.options.state = {{"key", ctx.state().key}, {"replica", replica}};
    asks.push_back(std::move(ask));
  }
  gd::JoinOptions join;
  join.wait_for = 3;    // resume after three children are terminal
  join.deadline = 10s;  // or at this deadline, whichever comes first
  return gd::ScheduleChildren("decide", std::move(asks), ctx.state(), join);
}

// Children that are still running show their live status (runnable, executing, ...).
gd::Outcome Decide(gd::StepContext<Lookup>& ctx) {
  int answers = 0;
  for (const gd::ChildResult& ask : ctx.children()) answers += ask.status == "done" ? 1 : 0;
  if (answers < 3) return gd::Stop("no quorum: " + std::to_string(answers) + " answers");
  return gd::Done({{"answers", answers}, {"asked", ctx.children().size()}});
}

const auto kLookup = gd::Machine<Lookup>("guide.lookup")
                         .Step("start", AskReplicas)
                         .Step("decide", Decide)
                         .Register();

// --- nesting: a child that has children of its own ---

struct Gallery {
  std::vector<Album> albums;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Gallery, albums)

// Each album is itself a parent; the gallery resumes when every album has published.
gd::Outcome FanOutAlbums(gd::StepContext<Gallery>& ctx) {
  std::vector<gd::InsertRequest> albums;
  for (const Album& album : ctx.state().albums) {
    albums.push_back(gd::InsertRequest{"guide.album", std::nullopt, {}});
    albums.back().options.state = album;
  }
  return gd::ScheduleChildren("finish", std::move(albums), ctx.state());
}

const auto kGallery = gd::Machine<Gallery>("guide.gallery")
                          .Step("start", FanOutAlbums)
                          .Step("finish",
                                [](gd::StepContext<Gallery>& ctx) {
                                  gd::Json albums = gd::Json::array();
                                  for (const gd::ChildResult& album : ctx.children())
                                    albums.push_back(album.result);
                                  return gd::Done({{"albums", albums}});
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
    std::cout << "usage: example_guide_children DATABASE_URL\nmachines:";
    for (const char* name :
         {"guide.resize", "guide.album", "guide.ask_replica", "guide.lookup", "guide.gallery"}) {
      std::cout << " " << name;
    }
    std::cout << "\n";
    return 0;
  }
  gd::EngineOptions opts;
  opts.database = argv[1];
  opts.schema = "guide_children";
  opts.queues = {{"default", {8}}};
  auto engine = gd::Engine::Start(opts);
  gd::Client& client = engine->client();

  auto album = client.Insert(kAlbum, Album{"summer", {"a.jpg", "b.jpg", "a.jpg", "c.psd"}});
  auto lookup = client.Insert(kLookup, Lookup{"user:7", 5});
  auto gallery = client.Insert(
      kGallery, Gallery{{Album{"winter", {"d.jpg", "e.jpg"}}, Album{"spring", {"f.jpg"}}}});
  if (!album || !lookup || !gallery) return 1;
  for (std::int64_t id : {*album, *lookup, *gallery}) {
    const gd::InstanceInfo info = WaitTerminal(client, id);
    std::cout << info.fsm << " #" << id << " " << info.status << " (" << info.children.size()
              << " children): " << info.result.dump() << "\n";
  }
  engine->Stop();
  return 0;
}
