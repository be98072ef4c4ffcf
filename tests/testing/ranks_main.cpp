// main() of the multi-rank test programs (see ranks.h). Not part of deeprc_testing: linked only
// into tests/comm and tests/dist programs.

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "testing/ranks.h"

namespace deeprc::testing {
namespace {

std::unique_ptr<comm::Communicator>& Holder() {
  static std::unique_ptr<comm::Communicator> communicator;
  return communicator;
}

// A fatal assertion on one rank leaves its peers inside a collective: end the job at once.
class AbortOnFatalFailure : public ::testing::EmptyTestEventListener {
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (result.fatally_failed() && Holder() != nullptr && Holder()->size() > 1) {
      std::fflush(stdout);
      Holder()->Abort(1, "a fatal test failure on this rank");
    }
  }
};

}  // namespace

comm::Communicator& TestComm() { return *Holder(); }

}  // namespace deeprc::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto communicator = deeprc::comm::MakeCommunicator();
  if (!communicator.ok()) {
    std::fprintf(stderr, "cannot make the communicator: %s\n",
                 communicator.status().ToString().c_str());
    return 2;
  }
  auto& holder = deeprc::testing::Holder();
  holder = communicator.MoveValueUnsafe();
  // Rank 0 prints the progress; the others print only their failures.
  if (holder->rank() != 0) GTEST_FLAG_SET(brief, true);
  ::testing::UnitTest::GetInstance()->listeners().Append(
      new deeprc::testing::AbortOnFatalFailure);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int64_t any_failed = failed;
  if (!holder->AllReduce(std::span<int64_t>(&any_failed, 1), deeprc::comm::ReduceOp::kMax).ok()) {
    any_failed = 1;
  }
  if (any_failed != 0 && failed == 0) {
    std::fprintf(stderr, "rank %d: passed here, but a test failed on another rank\n",
                 holder->rank());
  }
  holder.reset();
  return any_failed != 0 ? 1 : 0;
}
