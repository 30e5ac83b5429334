// The dashboard's HTTP side: the embedded page and a small JSON API over the Client.
//
//   GET  /api/overview                 queues (cluster), nodes, this engine's queues (embedded)
//   GET  /api/instances?status=&queue=&fsm=&key=&before=&limit=
//   GET  /api/instances/ID             the instance, its history and its children tree
//   POST /api/instances/ID/cancel      {"cascade": bool, "reason": text}
//   POST /api/instances/ID/retry
//   POST /api/instances/ID/signal      {"name": text, "payload": JSON}
//   POST /api/queues/NAME/pause, /api/queues/NAME/resume
//   GET  /api/session                  {"access": "all" | "read_only", "csrf": token}
//
// Every request first passes the guard of http_server.cpp (Host, credentials, read-only,
// origin and CSRF token of actions, size limits; see docs/security.md). POST bodies must also be
// JSON (Content-Type application/json): a cross-site form cannot send that without the browser
// asking first. Errors are JSON {"error": ...}: 400 bad input (an id that is not a positive
// integer, a body that is not a JSON object), 401 no or wrong credentials, 403 read-only or a
// cross-site action, 404 no such instance, 405 an action not POSTed, 409 refused (not live, not
// retryable, no target), 413 a body too long, 415 not JSON, 421 a foreign Host, 500 anything
// else (its detail goes to the log only: database messages never reach the client).
#include "gen_durable/dashboard.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <deque>
#include <set>

#include "gen_durable/client.hpp"
#include "gen_durable/engine.hpp"
#include "gen_durable/http/assets.hpp"
#include "gen_durable/http/http_server.hpp"

namespace gen_durable {

namespace {

constexpr int kTreeLimit = 200;  // instances shown in one children tree at most

struct HttpError {
  int status;
  std::string message;
};

void Reply(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace),
                  "application/json; charset=utf-8");
}

// `text` as a positive integer; 400 naming `what` otherwise.
std::int64_t PositiveOf(const std::string& text, const char* what) {
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n <= 0) {
    throw HttpError{400, fmt::format("'{}' is not {}", text, what)};
  }
  return n;
}

std::int64_t IdOf(const std::string& text) { return PositiveOf(text, "an instance id"); }

std::optional<std::string> Param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  std::string v = req.get_param_value(name);
  if (v.empty()) return std::nullopt;
  return v;
}

Json Body(const httplib::Request& req) {
  const auto type = req.get_header_value("Content-Type");
  if (type.rfind("application/json", 0) != 0) {
    throw HttpError{415, "POST bodies must be application/json"};
  }
  if (req.body.empty()) return Json::object();
  Json j = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw HttpError{400, "the body is not a JSON object"};
  return j;
}

Json QueueJson(const QueueInfo& q) {
  return {{"name", q.name},
          {"paused", q.paused},
          {"counts", q.counts},
          {"oldest_ready_ms", q.oldest_ready_ms ? Json(*q.oldest_ready_ms) : Json(nullptr)},
          {"completed_last_minute", q.completed_last_minute},
          {"concurrency", q.concurrency},
          {"global_limit", q.global_limit ? Json(*q.global_limit) : Json(nullptr)}};
}

Json InstanceJson(const InstanceInfo& i) {
  Json j = i.ToJson();
  j["inserted_at"] = i.inserted_at;
  j["updated_at"] = i.updated_at;
  j["eligible_at"] = i.eligible_at;
  j["completed_at"] = i.completed_at ? Json(*i.completed_at) : Json(nullptr);
  j["locked_by"] = i.locked_by ? Json(*i.locked_by) : Json(nullptr);
  return j;
}

// The children tree under `root`, breadth first, at most kTreeLimit instances.
Json Tree(Client& client, const InstanceInfo& root) {
  Json top = {{"id", root.id},
              {"fsm", root.fsm},
              {"status", root.status},
              {"step", root.step},
              {"children", Json::array()}};
  std::deque<std::pair<Json*, std::vector<std::int64_t>>> todo = {{&top, root.children}};
  std::set<std::int64_t> seen = {root.id};
  int shown = 1;
  bool truncated = false;
  // Nodes live in nested arrays that grow: reserve each array before taking pointers into it.
  while (!todo.empty()) {
    auto [parent, ids] = todo.front();
    todo.pop_front();
    Json& kids = (*parent)["children"];
    std::vector<std::pair<std::size_t, std::vector<std::int64_t>>> next;
    for (auto id : ids) {
      if (shown >= kTreeLimit) {
        truncated = true;
        break;
      }
      if (!seen.insert(id).second) continue;
      auto info = client.Get(id);
      if (!info) continue;
      ++shown;
      kids.push_back({{"id", info->id},
                      {"fsm", info->fsm},
                      {"status", info->status},
                      {"step", info->step},
                      {"children", Json::array()}});
      if (!info->children.empty()) next.emplace_back(kids.size() - 1, info->children);
    }
    for (auto& [index, children] : next) todo.emplace_back(&kids[index], std::move(children));
  }
  top["truncated"] = truncated;
  return top;
}

// Runs `handler`, turning what it throws into a JSON error reply.
template <typename Handler>
void Guarded(httplib::Response& res, Handler&& handler) {
  try {
    handler();
  } catch (const HttpError& e) {
    Reply(res, e.status, {{"error", e.message}});
  } catch (const InvalidArgument& e) {
    Reply(res, 400, {{"error", e.what()}});
  } catch (const std::exception& e) {
    // The text may be the database's (names, values): it goes to the log, not to the client.
    spdlog::error("dashboard: {}", e.what());
    Reply(res, 500, {{"error", "internal error (see the server log)"}});
  }
}

void Routes(httplib::Server* server, const detail::HttpGuard& guard, Client& client, Engine* engine,
            const DashboardOptions& options) {
  const int refresh_ms = options.refresh_ms;
  server->Get("/api/session", [&guard](const httplib::Request&, httplib::Response& res) {
    const bool all = detail::CurrentAccess() == HttpAccess::kAll;
    Reply(res, 200, {{"access", all ? "all" : "read_only"}, {"csrf", guard.csrf_token()}});
  });
  server->Get(R"(/(index\.html)?)", [](const httplib::Request&, httplib::Response& res) {
    const auto* a = detail::FindAsset("/index.html");
    res.set_content(a->data, a->size, std::string(a->content_type));
  });
  server->Get(R"(/assets/([\w.-]+))", [](const httplib::Request& req, httplib::Response& res) {
    const auto* a = detail::FindAsset("/" + req.matches[1].str());
    if (!a) {
      Reply(res, 404, {{"error", "no such file"}});
      return;
    }
    res.set_content(a->data, a->size, std::string(a->content_type));
  });
  server->Get("/api/overview", [&client, engine, refresh_ms](const httplib::Request&,
                                                             httplib::Response& res) {
    Guarded(res, [&] {
      Json queues = Json::array();
      for (const auto& q : client.Queues()) queues.push_back(QueueJson(q));
      Json nodes = Json::array();
      for (const auto& n : client.Nodes()) nodes.push_back(n.ToJson());
      Json schedules = Json::array();
      for (const auto& s : client.Schedules()) schedules.push_back(s.ToJson());
      Json local = nullptr;
      if (engine) {
        local = {
            {"engine", engine->name()}, {"node", engine->node_id()}, {"queues", Json::object()}};
        for (const auto& [q, s] : engine->Queues()) {
          local["queues"][q] = {
              {"concurrency", s.concurrency}, {"min", s.min},           {"max", s.max},
              {"in_flight", s.in_flight},     {"buffered", s.buffered}, {"draining", s.draining}};
        }
      }
      Reply(res, 200,
            {{"schema", client.schema()},
             {"queues", queues},
             {"nodes", nodes},
             {"schedules", schedules},
             {"local", local},
             {"refresh_ms", refresh_ms}});
    });
  });
  server->Get("/api/instances", [&client](const httplib::Request& req, httplib::Response& res) {
    Guarded(res, [&] {
      ListFilter f;
      f.status = Param(req, "status");
      f.queue = Param(req, "queue");
      f.fsm = Param(req, "fsm");
      f.key = Param(req, "key");
      if (auto before = Param(req, "before")) f.before_id = IdOf(*before);
      f.limit = 50;
      if (auto limit = Param(req, "limit")) {
        f.limit = static_cast<int>(std::min<std::int64_t>(PositiveOf(*limit, "a limit"), 500));
      }
      Json rows = Json::array();
      for (const auto& i : client.List(f)) rows.push_back(InstanceJson(i));
      Reply(res, 200, {{"instances", rows}});
    });
  });
  server->Get(R"(/api/instances/([^/]+))", [&client](const httplib::Request& req,
                                                     httplib::Response& res) {
    Guarded(res, [&] {
      const auto id = IdOf(req.matches[1].str());
      auto info = client.Get(id);
      if (!info) throw HttpError{404, fmt::format("instance {} not found", id)};
      Json history = Json::array();
      for (const auto& h : client.History(id)) history.push_back(h.ToJson());
      Reply(
          res, 200,
          {{"instance", InstanceJson(*info)}, {"history", history}, {"tree", Tree(client, *info)}});
    });
  });
  server->Post(R"(/api/instances/([^/]+)/cancel)",
               [&client](const httplib::Request& req, httplib::Response& res) {
                 Guarded(res, [&] {
                   const auto id = IdOf(req.matches[1].str());
                   const Json body = Body(req);
                   CancelOptions o;
                   o.cascade = body.value("cascade", false);
                   o.reason = body.value("reason", std::string("cancelled from the dashboard"));
                   const CancelReport r = client.Cancel(id, o);
                   if (r.cancelled.empty() && r.requested.empty()) {
                     throw HttpError{409, fmt::format("instance {} is not live", id)};
                   }
                   Reply(res, 200, {{"cancelled", r.cancelled}, {"requested", r.requested}});
                 });
               });
  server->Post(R"(/api/instances/([^/]+)/retry)", [&client](const httplib::Request& req,
                                                            httplib::Response& res) {
    Guarded(res, [&] {
      const auto id = IdOf(req.matches[1].str());
      Body(req);
      if (!client.Retry(id)) {
        throw HttpError{409, fmt::format("instance {} cannot be retried (not failed or "
                                         "cancelled, its unique key is held, or its parent "
                                         "still waits on it)",
                                         id)};
      }
      Reply(res, 200, {{"retried", id}});
    });
  });
  server->Post(R"(/api/instances/([^/]+)/signal)", [&client](const httplib::Request& req,
                                                             httplib::Response& res) {
    Guarded(res, [&] {
      const auto id = IdOf(req.matches[1].str());
      const Json body = Body(req);
      if (!body.contains("name") || !body["name"].is_string()) {
        throw HttpError{400, "the body needs a signal \"name\""};
      }
      auto r = client.Signal(id, body["name"].get<std::string>(), body.value("payload", Json()));
      if (!r.ok()) throw HttpError{409, r.error().message};
      Reply(res, 200, {{"signal_id", *r}});
    });
  });
  for (const bool pause : {true, false}) {
    server->Post(pause ? R"(/api/queues/([^/]+)/pause)" : R"(/api/queues/([^/]+)/resume)",
                 [&client, pause](const httplib::Request& req, httplib::Response& res) {
                   Guarded(res, [&] {
                     Body(req);
                     const std::string queue = req.matches[1].str();
                     if (pause) {
                       client.PauseQueue(queue);
                     } else {
                       client.ResumeQueue(queue);
                     }
                     Reply(res, 200, {{"queue", queue}, {"paused", pause}});
                   });
                 });
  }
  // The actions are POST only: another method on their paths says so instead of "not found".
  const char* actions =
      R"(/api/(instances/[^/]+/(cancel|retry|signal)|queues/[^/]+/(pause|resume)))";
  const auto post_only = [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Allow", "POST");
    Reply(res, 405, {{"error", "this action takes a POST"}});
  };
  server->Get(actions, post_only);
  server->Put(actions, post_only);
  server->Patch(actions, post_only);
  server->Delete(actions, post_only);
  server->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      Reply(res, res.status, {{"error", res.status == 404 ? "not found" : "bad request"}});
    }
  });
}

std::unique_ptr<detail::HttpServerImpl> Serve(Client& client, Engine* engine,
                                              const DashboardOptions& options) {
  if (options.refresh_ms < 100) throw InvalidArgument("dashboard: refresh_ms must be >= 100");
  return std::make_unique<detail::HttpServerImpl>(
      options.security, options.bind, options.port,
      [&client, engine, options](httplib::Server& server, const detail::HttpGuard& guard) {
        Routes(&server, guard, client, engine, options);
      });
}

}  // namespace

Dashboard::Dashboard(std::unique_ptr<detail::HttpServerImpl> impl) : impl_(std::move(impl)) {}
Dashboard::~Dashboard() { Stop(); }

std::unique_ptr<Dashboard> Dashboard::Start(Client& client, const DashboardOptions& options) {
  return std::unique_ptr<Dashboard>(new Dashboard(Serve(client, nullptr, options)));
}

std::unique_ptr<Dashboard> Dashboard::Start(Engine& engine, const DashboardOptions& options) {
  return std::unique_ptr<Dashboard>(new Dashboard(Serve(engine.client(), &engine, options)));
}

bool Dashboard::tls() const { return impl_->tls(); }

int Dashboard::port() const { return impl_->port(); }

void Dashboard::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace gen_durable
