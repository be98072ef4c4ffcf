#pragma once

// Invariant checks. DEEPRC_CHECK* always run; DEEPRC_DCHECK* are compiled out of release builds.
// A failed check is a bug: it prints both operands and where, then aborts.

#include <sstream>
#include <string>

namespace deeprc::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* expression,
                              const std::string& detail);

template <typename A, typename B>
std::string DescribeOperands(const A& a, const B& b) {
  std::ostringstream out;
  out << "(" << a << " vs. " << b << ")";
  return out.str();
}
}  // namespace deeprc::internal

#define DEEPRC_CHECK(condition)                                                      \
  do {                                                                               \
    if (!(condition)) ::deeprc::internal::CheckFailed(__FILE__, __LINE__, #condition, ""); \
  } while (false)

#define DEEPRC_CHECK_OP(a, op, b)                                                  \
  do {                                                                             \
    const auto& deeprc_a_ = (a);                                                   \
    const auto& deeprc_b_ = (b);                                                   \
    if (!(deeprc_a_ op deeprc_b_)) {                                               \
      ::deeprc::internal::CheckFailed(__FILE__, __LINE__, #a " " #op " " #b,       \
                                      ::deeprc::internal::DescribeOperands(deeprc_a_, deeprc_b_)); \
    }                                                                              \
  } while (false)

#define DEEPRC_CHECK_EQ(a, b) DEEPRC_CHECK_OP(a, ==, b)
#define DEEPRC_CHECK_LE(a, b) DEEPRC_CHECK_OP(a, <=, b)
#define DEEPRC_CHECK_LT(a, b) DEEPRC_CHECK_OP(a, <, b)

#ifdef NDEBUG
#define DEEPRC_DCHECK(condition) \
  do {                           \
  } while (false && (condition))
#define DEEPRC_DCHECK_EQ(a, b) DEEPRC_DCHECK((a) == (b))
#define DEEPRC_DCHECK_LE(a, b) DEEPRC_DCHECK((a) <= (b))
#define DEEPRC_DCHECK_LT(a, b) DEEPRC_DCHECK((a) < (b))
#else
#define DEEPRC_DCHECK(condition) DEEPRC_CHECK(condition)
#define DEEPRC_DCHECK_EQ(a, b) DEEPRC_CHECK_EQ(a, b)
#define DEEPRC_DCHECK_LE(a, b) DEEPRC_CHECK_LE(a, b)
#define DEEPRC_DCHECK_LT(a, b) DEEPRC_CHECK_LT(a, b)
#endif
