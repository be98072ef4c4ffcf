#pragma once

#include <cstdlib>
#include <utility>
#include <variant>

#include "deeprc/core/status.h"

namespace deeprc {

namespace internal {
[[noreturn]] void DieWithStatus(const Status& status, const char* what);
}  // namespace internal

// A value or the error that prevented it (Arrow's Result<T>).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : storage_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : storage_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(storage_).ok()) {
      storage_ = Status::Internal("Result constructed from an OK status without a value");
    }
  }

  bool ok() const { return std::holds_alternative<T>(storage_); }
  Status status() const { return ok() ? Status::OK() : std::get<Status>(storage_); }

  const T& ValueOrDie() const& {
    if (!ok()) internal::DieWithStatus(std::get<Status>(storage_), "ValueOrDie");
    return std::get<T>(storage_);
  }
  T& ValueOrDie() & {
    if (!ok()) internal::DieWithStatus(std::get<Status>(storage_), "ValueOrDie");
    return std::get<T>(storage_);
  }
  T ValueOrDie() && {
    if (!ok()) internal::DieWithStatus(std::get<Status>(storage_), "ValueOrDie");
    return std::move(std::get<T>(storage_));
  }
  // Only after checking ok().
  T MoveValueUnsafe() { return std::move(std::get<T>(storage_)); }

  const T& operator*() const& { return ValueOrDie(); }
  T& operator*() & { return ValueOrDie(); }
  T operator*() && { return std::move(*this).ValueOrDie(); }
  const T* operator->() const { return &ValueOrDie(); }
  T* operator->() { return &ValueOrDie(); }

  T ValueOr(T fallback) && { return ok() ? MoveValueUnsafe() : std::move(fallback); }

 private:
  std::variant<Status, T> storage_;
};

}  // namespace deeprc

// Assigns the value of a Result expression to lhs, or returns its error.
#define DEEPRC_ASSIGN_OR_RAISE_IMPL(result_name, lhs, rexpr) \
  auto result_name = (rexpr);                                 \
  if (!result_name.ok()) return result_name.status();         \
  lhs = result_name.MoveValueUnsafe()

#define DEEPRC_ASSIGN_OR_RAISE(lhs, rexpr) \
  DEEPRC_ASSIGN_OR_RAISE_IMPL(DEEPRC_CONCAT(deeprc_result_, __COUNTER__), lhs, rexpr)
