#pragma once

#include <gtest/gtest.h>

#include "deeprc/core/result.h"

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    ::deeprc::Status deeprc_test_status_ = (expr);            \
    ASSERT_TRUE(deeprc_test_status_.ok()) << deeprc_test_status_.ToString(); \
  } while (false)

#define EXPECT_OK(expr)                                       \
  do {                                                        \
    ::deeprc::Status deeprc_test_status_ = (expr);            \
    EXPECT_TRUE(deeprc_test_status_.ok()) << deeprc_test_status_.ToString(); \
  } while (false)

#define ASSERT_OK_AND_ASSIGN_IMPL(result_name, lhs, rexpr)           \
  auto result_name = (rexpr);                                        \
  ASSERT_TRUE(result_name.ok()) << result_name.status().ToString(); \
  lhs = result_name.MoveValueUnsafe()

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  ASSERT_OK_AND_ASSIGN_IMPL(DEEPRC_CONCAT(deeprc_test_result_, __COUNTER__), lhs, rexpr)
