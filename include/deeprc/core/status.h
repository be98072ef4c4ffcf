#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include <fmt/core.h>

namespace deeprc {

// Whose fault an error is decides how the command line reports it (exit 2 for the user's) and
// whether a task may be retried (a system error may pass; a user error will not).
enum class StatusCode : uint8_t {
  kOk = 0,
  // The user's: bad input, bad options, a name that does not exist, a type that does not fit.
  kInvalid,
  kTypeError,
  kKeyError,
  kNotImplemented,
  // The system's: files, network, memory.
  kIOError,
  kOutOfMemory,
  kCancelled,
  kTimeout,
  // A bug in deeprc.
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message);

  static Status OK() { return {}; }

  template <typename... Args>
  static Status Invalid(fmt::format_string<Args...> format, Args&&... args) {
    return {StatusCode::kInvalid, fmt::format(format, std::forward<Args>(args)...)};
  }
  template <typename... Args>
  static Status TypeError(fmt::format_string<Args...> format, Args&&... args) {
    return {StatusCode::kTypeError, fmt::format(format, std::forward<Args>(args)...)};
  }
  template <typename... Args>
  static Status KeyError(fmt::format_string<Args...> format, Args&&... args) {
    return {StatusCode::kKeyError, fmt::format(format, std::forward<Args>(args)...)};
  }
  template <typename... Args>
  static Status NotImplemented(fmt::format_string<Args...> format, Args&&... args) {
    return {StatusCode::kNotImplemented, fmt::format(format, std::forward<Args>(args)...)};
  }
  template <typename... Args>
  static Status IOError(fmt::format_string<Args...> format, Args&&... args) {
    return {StatusCode::kIOError, fmt::format(format, std::forward<Args>(args)...)};
  }
  template <typename... Args>
  static Status OutOfMemory(fmt::format_string<Args...> format, Args&&... args) {
    return {StatusCode::kOutOfMemory, fmt::format(format, std::forward<Args>(args)...)};
  }
  template <typename... Args>
  static Status Cancelled(fmt::format_string<Args...> format, Args&&... args) {
    return {StatusCode::kCancelled, fmt::format(format, std::forward<Args>(args)...)};
  }
  template <typename... Args>
  static Status Timeout(fmt::format_string<Args...> format, Args&&... args) {
    return {StatusCode::kTimeout, fmt::format(format, std::forward<Args>(args)...)};
  }
  template <typename... Args>
  static Status Internal(fmt::format_string<Args...> format, Args&&... args) {
    return {StatusCode::kInternal, fmt::format(format, std::forward<Args>(args)...)};
  }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  const std::string& message() const;
  // True for errors caused by the input or options the user gave.
  bool IsUserError() const;
  // "Invalid: message"
  std::string ToString() const;

  // Returns a copy with "context: " put before the message; OK stays OK.
  Status WithContext(std::string_view context) const;

  bool operator==(const Status& other) const {
    return code() == other.code() && message() == other.message();
  }

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  // Null when OK, so that OK costs one pointer and no allocation.
  std::shared_ptr<const State> state_;
};

}  // namespace deeprc

#define DEEPRC_CONCAT_IMPL(a, b) a##b
#define DEEPRC_CONCAT(a, b) DEEPRC_CONCAT_IMPL(a, b)

// Returns the status from the enclosing function when it is not OK.
#define DEEPRC_RETURN_NOT_OK(expr)                        \
  do {                                                    \
    ::deeprc::Status deeprc_status_ = (expr);             \
    if (!deeprc_status_.ok()) return deeprc_status_;      \
  } while (false)
