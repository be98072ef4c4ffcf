#include "deeprc/core/status.h"

#include <cstdio>
#include <cstdlib>

#include "deeprc/core/check.h"
#include "deeprc/core/result.h"

namespace deeprc {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalid: return "Invalid";
    case StatusCode::kTypeError: return "Type error";
    case StatusCode::kKeyError: return "Key error";
    case StatusCode::kNotImplemented: return "Not implemented";
    case StatusCode::kIOError: return "I/O error";
    case StatusCode::kOutOfMemory: return "Out of memory";
    case StatusCode::kCancelled: return "Cancelled";
    case StatusCode::kTimeout: return "Timeout";
    case StatusCode::kInternal: return "Internal error";
  }
  return "Unknown";
}

Status::Status(StatusCode code, std::string message) {
  if (code != StatusCode::kOk) {
    state_ = std::make_shared<const State>(State{code, std::move(message)});
  }
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return state_ ? state_->message : kEmpty;
}

bool Status::IsUserError() const {
  switch (code()) {
    case StatusCode::kInvalid:
    case StatusCode::kTypeError:
    case StatusCode::kKeyError:
    case StatusCode::kNotImplemented:
      return true;
    default:
      return false;
  }
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return fmt::format("{}: {}", StatusCodeName(code()), message());
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code(), fmt::format("{}: {}", context, message()));
}

namespace internal {

void DieWithStatus(const Status& status, const char* what) {
  std::fprintf(stderr, "deeprc: %s on an error: %s\n", what, status.ToString().c_str());
  std::abort();
}

void CheckFailed(const char* file, int line, const char* expression, const std::string& detail) {
  std::fprintf(stderr, "deeprc: check failed at %s:%d: %s %s\n", file, line, expression,
               detail.c_str());
  std::abort();
}

}  // namespace internal
}  // namespace deeprc
