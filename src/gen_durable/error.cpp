// Names of the domain error codes.
#include "gen_durable/error.hpp"

namespace gen_durable {

const char* ErrorCodeName(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kDuplicate:
      return "duplicate";
    case ErrorCode::kNoTarget:
      return "no_target";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kTimeout:
      return "timeout";
  }
  return "unknown";
}

}  // namespace gen_durable
