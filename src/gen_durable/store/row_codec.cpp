// The JSON of the store's rows: decoding what gd_claim returns, encoding new rows and the
// outcomes of a group commit, and the array literals of statement parameters.
#include "gen_durable/store/row_codec.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <stdexcept>
#include <type_traits>

namespace gen_durable::detail {

namespace {

// A bigint written by Postgres; anything else (say 1.5, or 1e300, which a plain get<> would
// convert with undefined behaviour) is refused.
std::int64_t BigintOf(const Json& j) {
  if (!j.is_number_integer() ||
      (j.is_number_unsigned() && j.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))) {
    throw std::out_of_range("not a bigint: " +
                            j.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
  return j.get<std::int64_t>();
}

// Parses stored JSON. jsonb accepts values nlohmann cannot represent (e.g. 1e1000); such a
// value must not take a node down, so the failure is returned instead of thrown.
std::optional<Json> ParseStored(std::string_view text, std::string* error) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    if (error) *error = e.what();
    return std::nullopt;
  }
}

std::string JsonText(const std::string& v) {
  return Json(v).dump(-1, ' ', false, Json::error_handler_t::replace);
}

template <typename T>
std::string JsonOpt(const std::optional<T>& v) {
  if (!v) return "null";
  if constexpr (std::is_same_v<T, std::string>) {
    return JsonText(*v);
  } else {
    return std::to_string(*v);
  }
}

// One element of the insert source array, assembled as text: the state is already encoded.
void AppendNewInstance(std::string& out, const NewInstance& n) {
  out += fmt::format(R"({{"fsm":{},"fsm_version":{},"queue":{},"step":{},"state":{},)"
                     R"("priority":{},"eligible_at":{},"delay_ms":{},"max_attempts":{},)"
                     R"("partition_key":{},"unique_key":{},"unique_scope":)",
                     JsonText(n.fsm), n.fsm_version, JsonText(n.queue), JsonText(n.step), n.state,
                     n.priority, JsonOpt(n.eligible_at), JsonOpt(n.delay_ms),
                     JsonOpt(n.max_attempts), JsonOpt(n.partition_key), JsonOpt(n.unique_key));
  if (n.unique_scope.empty()) {
    out += "null";
  } else {
    out += Json(n.unique_scope).dump();
  }
  if (n.rate_limit) {
    out += fmt::format(
        R"(,"rate_limit":{},"rate_key":{},"rate_weight":{}}})", JsonText(n.rate_limit->name),
        n.rate_limit->key.empty() ? "null" : JsonText(n.rate_limit->key), n.rate_limit->weight);
  } else {
    out += R"(,"rate_limit":null,"rate_key":null,"rate_weight":null})";
  }
}

}  // namespace

Json ParseForDisplay(std::string_view text) {
  auto j = ParseStored(text, nullptr);
  return j ? std::move(*j) : Json(std::string(text));
}

std::string NewInstancesJson(const std::vector<NewInstance>& rows) {
  std::string out = "[";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i) out += ',';
    AppendNewInstance(out, rows[i]);
  }
  out += ']';
  return out;
}

std::string TextArray(const std::vector<std::string>& items) {
  std::string s = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) s += ',';
    s += '"';
    for (char ch : items[i]) {
      if (ch == '"' || ch == '\\') s += '\\';
      s += ch;
    }
    s += '"';
  }
  s += '}';
  return s;
}

std::string IdArray(const std::vector<std::int64_t>& ids) {
  std::string s = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  s += '}';
  return s;
}

void DecodeClaimJson(std::string_view state, std::optional<std::string_view> signals,
                     std::optional<std::string_view> children, ClaimedRow& row) {
  // The first column that fails names the error: the instance fails either way.
  auto fail = [&row](const char* what, const std::string& error) {
    if (row.state_error.empty()) row.state_error = std::string(what) + error;
  };
  std::string error;
  if (auto j = ParseStored(state, &error)) {
    row.state = std::move(*j);
  } else {
    fail("stored state cannot be decoded: ", error);
  }
  // The inbox and the children are built by gd_claim (jsonb_agg of jsonb_build_object), so
  // their shape is known; a value of the wrong type still fails the row, not the whole claim.
  if (signals) {
    if (auto sigs = ParseStored(*signals, &error)) {
      try {
        for (const auto& s : *sigs) {
          row.signals.push_back(gen_durable::Signal{
              BigintOf(s.at("id")), s.at("name").get<std::string>(), s.at("payload")});
        }
      } catch (const std::exception& e) {
        row.signals.clear();
        fail("stored signals have an unexpected shape: ", e.what());
      }
    } else {
      fail("stored signal payload cannot be decoded: ", error);
    }
  }
  if (children) {
    if (auto kids = ParseStored(*children, &error)) {
      try {
        for (const auto& k : *kids) {
          ChildResult c;
          c.id = BigintOf(k.at("id"));
          c.fsm = k.at("fsm").get<std::string>();
          c.status = k.at("status").get<std::string>();
          c.state = k.at("state");
          c.result = k.at("result");
          if (k.at("last_error").is_string()) c.last_error = k.at("last_error").get<std::string>();
          row.children.push_back(std::move(c));
        }
      } catch (const std::exception& e) {
        row.children.clear();
        fail("stored children have an unexpected shape: ", e.what());
      }
    } else {
      fail("stored child state cannot be decoded: ", error);
    }
  }
}

CommitPayload EncodeCommit(const std::vector<OutcomeRow>& rows) {
  // The arrays are assembled as text: states and results are already encoded JSON, and
  // re-parsing them only to print them again would cost more than the commit.
  auto str = [](const std::optional<std::string>& s) { return JsonOpt(s); };
  auto ids_json = [](const std::vector<std::int64_t>& ids) {
    return ids.empty() ? std::string("null") : Json(ids).dump();
  };
  CommitPayload out;
  std::string& arr = out.outcomes;
  std::string& wake = out.wakes;
  std::string& kids = out.children;
  std::string& joins = out.joins;
  arr = wake = kids = joins = "[";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& o = rows[i];
    if (i) arr += ',';
    arr += fmt::format(
        R"({{"id":{},"seq":{},"status":"{}","attempt":{},"keep":{},"step":{},"state":{},)"
        R"("delay_ms":{},"run_at_ms":{},"result":{},"last_error":{},"set_partition":{},)"
        R"("partition_key":{},)"
        R"("rate_limit":{},"rate_key":{},"rate_weight":{},"consume":{},"clear_inbox":{},)"
        R"("awaiting":{},"await_next_step":{},"park_ms":{},"join_next_step":{},)"
        R"("keep_awaiting":{},"ran_step":{},"ran_attempt":{},"duration_ms":{},)"
        R"("claim_step":{}}})",
        o.id, o.lease_seq, o.status, o.attempt, o.keep ? "true" : "false", str(o.step),
        o.state ? *o.state : "null", JsonOpt(o.delay_ms), JsonOpt(o.run_at_ms),
        o.result ? *o.result : "null", str(o.last_error), o.partition ? "true" : "false",
        o.partition ? JsonOpt(*o.partition) : "null",
        o.rate_limit ? JsonText(o.rate_limit->name) : "null",
        o.rate_limit && !o.rate_limit->key.empty() ? JsonText(o.rate_limit->key) : "null",
        o.rate_limit ? std::to_string(o.rate_limit->weight) : "null", ids_json(o.consume),
        o.clear_inbox ? "true" : "false",
        // (repaired like every other string: a throw here would fail the whole group commit)
        o.awaiting.empty() ? std::string("null")
                           : Json(o.awaiting).dump(-1, ' ', false, Json::error_handler_t::replace),
        str(o.await_next_step), JsonOpt(o.park_ms), str(o.join_next_step),
        o.keep_awaiting ? "true" : "false", o.ran_step.empty() ? "null" : JsonText(o.ran_step),
        o.ran_attempt, o.duration_ms ? fmt::format("{:.3f}", *o.duration_ms) : "null",
        o.claim_step);
    if (o.status == "awaiting_signal") {
      if (wake.size() > 1) wake += ',';
      wake +=
          fmt::format(R"({{"id":{},"seq":{},"shown":{}}})", o.id, o.lease_seq, ids_json(o.shown));
    }
    if (o.status == "awaiting_children") {
      if (joins.size() > 1) joins += ',';
      joins += fmt::format(R"({{"id":{},"wait_for":{}}})", o.id, JsonOpt(o.wait_for));
      for (const auto& child : o.children) {
        if (kids.size() > 1) kids += ',';
        AppendNewInstance(kids, child);
        kids.back() = ',';  // reopen the object to add its parent
        kids += fmt::format(R"("parent":{}}})", o.id);
      }
    }
  }
  arr += ']';
  wake += ']';
  kids += ']';
  joins += ']';
  return out;
}

}  // namespace gen_durable::detail
