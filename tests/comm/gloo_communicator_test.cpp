// The Gloo backend's own behaviour, beside the backend-agnostic communicator_test: options from
// the environment, a rendezvous that names the ranks that never came, and a small job of Gloo
// ranks run as threads of this process (so it runs under every launcher), including a rank that
// goes away while its peer waits. Every rank of the job runs these on its own, in its own store.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "deeprc/comm/gloo_communicator.h"
#include "testing/assertions.h"
#include "testing/program.h"
#include "testing/ranks.h"

namespace deeprc::comm {
namespace {

namespace fs = std::filesystem;

#ifndef DEEPRC_HAVE_GLOO
#define SKIP_WITHOUT_GLOO() GTEST_SKIP() << "this build has no Gloo backend"
#else
#define SKIP_WITHOUT_GLOO() (void)0
#endif

// Sets variables for one test and restores what was there.
class ScopedEnvironment {
 public:
  void Set(const char* name, const char* value) {
    if (!saved_.count(name)) {
      const char* old = std::getenv(name);
      saved_[name] = old == nullptr ? std::nullopt : std::optional<std::string>(old);
    }
    if (value == nullptr) {
      ::unsetenv(name);
    } else {
      ::setenv(name, value, 1);
    }
  }
  ~ScopedEnvironment() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

TEST(GlooOptions, FromEnvironment) {
  ScopedEnvironment environment;
  environment.Set("DEEPRC_RANK", "2");
  environment.Set("DEEPRC_WORLD_SIZE", "4");
  environment.Set("DEEPRC_GLOO_STORE", "/some/store");
  environment.Set("DEEPRC_GLOO_HOSTNAME", nullptr);
  environment.Set("DEEPRC_GLOO_TIMEOUT", nullptr);
  ASSERT_OK_AND_ASSIGN(GlooOptions options, GlooOptionsFromEnvironment());
  EXPECT_EQ(options.rank, 2);
  EXPECT_EQ(options.size, 4);
  EXPECT_EQ(options.store_directory, "/some/store");
  EXPECT_EQ(options.hostname, "127.0.0.1");
  EXPECT_EQ(options.timeout_seconds, 60);

  environment.Set("DEEPRC_GLOO_HOSTNAME", "localhost");
  environment.Set("DEEPRC_GLOO_TIMEOUT", "2.5");
  ASSERT_OK_AND_ASSIGN(options, GlooOptionsFromEnvironment());
  EXPECT_EQ(options.hostname, "localhost");
  EXPECT_EQ(options.timeout_seconds, 2.5);
}

TEST(GlooOptions, ErrorsNameTheVariable) {
  struct Case {
    const char* name;
    const char* value;
  };
  for (const Case& bad : {Case{"DEEPRC_RANK", nullptr}, Case{"DEEPRC_RANK", "one"},
                          Case{"DEEPRC_RANK", "4"}, Case{"DEEPRC_RANK", "-1"},
                          Case{"DEEPRC_WORLD_SIZE", nullptr}, Case{"DEEPRC_WORLD_SIZE", "0"},
                          Case{"DEEPRC_WORLD_SIZE", "4x"}, Case{"DEEPRC_GLOO_STORE", ""},
                          Case{"DEEPRC_GLOO_TIMEOUT", "soon"}, Case{"DEEPRC_GLOO_TIMEOUT", "0"}}) {
    ScopedEnvironment environment;
    environment.Set("DEEPRC_RANK", "1");
    environment.Set("DEEPRC_WORLD_SIZE", "4");
    environment.Set("DEEPRC_GLOO_STORE", "/some/store");
    environment.Set("DEEPRC_GLOO_TIMEOUT", nullptr);
    environment.Set(bad.name, bad.value);
    auto options = GlooOptionsFromEnvironment();
    ASSERT_FALSE(options.ok()) << bad.name << "=" << (bad.value ? bad.value : "(unset)");
    EXPECT_TRUE(options.status().IsUserError());
    EXPECT_NE(options.status().message().find(bad.name), std::string::npos)
        << options.status().message();
  }
}

TEST(GlooRendezvous, NamesTheRanksThatDidNotAppear) {
  SKIP_WITHOUT_GLOO();
  const fs::path store = testing::FreshTestDirectory("deeprc_gloo_missing");
  GlooOptions options;
  options.rank = 1;
  options.size = 4;
  options.store_directory = store.string();
  options.timeout_seconds = 0.3;
  const auto start = std::chrono::steady_clock::now();
  auto communicator = MakeGlooCommunicator(options);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fs::remove_all(store);
  ASSERT_FALSE(communicator.ok());
  EXPECT_EQ(communicator.status().code(), StatusCode::kIOError);
  EXPECT_NE(communicator.status().message().find("rank(s) 0, 2, 3 of 4 did not appear"),
            std::string::npos)
      << communicator.status().message();
  EXPECT_GE(waited, 0.3);
  EXPECT_LT(waited, 10);
}

TEST(GlooRendezvous, BadOptions) {
  SKIP_WITHOUT_GLOO();
  GlooOptions options;
  options.rank = 0;
  options.size = 2;
  options.store_directory = "/nonexistent/deeprc/store";
  auto communicator = MakeGlooCommunicator(options);
  ASSERT_FALSE(communicator.ok());
  EXPECT_NE(communicator.status().message().find("/nonexistent/deeprc/store"), std::string::npos);
  options.store_directory = fs::temp_directory_path().string();
  options.rank = 2;
  EXPECT_FALSE(MakeGlooCommunicator(options).ok());
}

// `ranks` Gloo ranks as threads of this process, each running `body(communicator)`.
template <typename Body>
std::vector<Status> RunThreadRanks(int ranks, Body body) {
  const fs::path store = testing::FreshTestDirectory("deeprc_gloo_threads");
  std::vector<Status> results(ranks);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < ranks; ++rank) {
    threads.emplace_back([&, rank] {
      GlooOptions options;
      options.rank = rank;
      options.size = ranks;
      options.store_directory = store.string();
      options.timeout_seconds = 30;
      auto communicator = MakeGlooCommunicator(options);
      if (!communicator.ok()) {
        results[rank] = communicator.status();
        return;
      }
      results[rank] = body(**communicator);
    });
  }
  for (auto& thread : threads) thread.join();
  fs::remove_all(store);
  return results;
}

std::vector<uint8_t> Pattern(int from, int to, int64_t size) {
  std::vector<uint8_t> bytes(size);
  for (int64_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(from * 31 + to * 7 + i);
  return bytes;
}

Status Expect(bool condition, const std::string& what) {
  return condition ? Status::OK() : Status::Internal("expected {}", what);
}

bool SameBytes(const BufferPtr& buffer, const std::vector<uint8_t>& expected) {
  return buffer != nullptr && buffer->size() == std::ssize(expected) &&
         std::equal(expected.begin(), expected.end(), buffer->data());
}

TEST(GlooThreads, EveryOperationBetweenThreeRanks) {
  SKIP_WITHOUT_GLOO();
  constexpr int kRanks = 3;
  // Sizes per (from, to): zero, small, above the eager limit of point-to-point messages.
  auto size_of = [](int from, int to) -> int64_t {
    if ((from + to) % 3 == 0) return 0;
    return (from + 1) * 1000 + to * ((from == 2) ? (3 << 20) : 17);
  };
  auto results = RunThreadRanks(kRanks, [&](Communicator& comm) -> Status {
    const int me = comm.rank();
    DEEPRC_RETURN_NOT_OK(Expect(comm.size() == kRanks && comm.backend() == Backend::kGloo,
                                "a gloo communicator of 3 ranks"));
    // All-to-all with sizes that differ per pair.
    std::vector<std::vector<uint8_t>> parts;
    std::vector<Bytes> send;
    for (int to = 0; to < kRanks; ++to) parts.push_back(Pattern(me, to, size_of(me, to)));
    for (const auto& part : parts) send.emplace_back(part);
    DEEPRC_ASSIGN_OR_RAISE(auto received, comm.AllToAll(send));
    DEEPRC_RETURN_NOT_OK(Expect(received.size() == kRanks, "one buffer per rank"));
    for (int from = 0; from < kRanks; ++from) {
      DEEPRC_RETURN_NOT_OK(Expect(SameBytes(received[from], Pattern(from, me, size_of(from, me))),
                                  fmt::format("all-to-all bytes from rank {}", from)));
    }
    // Every rank sends to every other before receiving anything: small messages do not wait for
    // their receiver. Then one large message around the ring, ordered so nobody waits forever.
    for (int to = 0; to < kRanks; ++to) {
      if (to == me) continue;
      auto small = Pattern(me, to, 100 + to);
      DEEPRC_RETURN_NOT_OK(comm.Send(to, 7, small));
      DEEPRC_RETURN_NOT_OK(comm.Send(to, 7, Pattern(me, to, 0)));
    }
    for (int from = 0; from < kRanks; ++from) {
      if (from == me) continue;
      DEEPRC_ASSIGN_OR_RAISE(auto first, comm.Receive(from, 7));
      DEEPRC_ASSIGN_OR_RAISE(auto second, comm.Receive(from, 7));
      DEEPRC_RETURN_NOT_OK(Expect(SameBytes(first, Pattern(from, me, 100 + me)) &&
                                      SameBytes(second, Pattern(from, me, 0)),
                                  "messages in the order sent"));
    }
    const int next = (me + 1) % kRanks;
    const int previous = (me + kRanks - 1) % kRanks;
    const auto large = Pattern(me, next, (5 << 20) + me);
    if (me == 0) DEEPRC_RETURN_NOT_OK(comm.Send(next, 3, large));
    DEEPRC_ASSIGN_OR_RAISE(auto from_previous, comm.Receive(previous, 3));
    if (me != 0) DEEPRC_RETURN_NOT_OK(comm.Send(next, 3, large));
    DEEPRC_RETURN_NOT_OK(Expect(SameBytes(from_previous, Pattern(previous, me, (5 << 20) + previous)),
                                "the large message"));
    // Messages to itself.
    DEEPRC_RETURN_NOT_OK(comm.Send(me, 5, Pattern(me, me, 10)));
    DEEPRC_ASSIGN_OR_RAISE(auto to_self, comm.Receive(me, 5));
    DEEPRC_RETURN_NOT_OK(Expect(SameBytes(to_self, Pattern(me, me, 10)), "a message to itself"));

    // Gather, all-gather, broadcast from every root.
    for (int root = 0; root < kRanks; ++root) {
      const auto mine = Pattern(me, root, size_of(me, root));
      DEEPRC_ASSIGN_OR_RAISE(auto gathered, comm.Gather(root, mine));
      DEEPRC_RETURN_NOT_OK(Expect(gathered.size() == (me == root ? kRanks : 0u), "gather count"));
      for (size_t from = 0; from < gathered.size(); ++from) {
        DEEPRC_RETURN_NOT_OK(Expect(
            SameBytes(gathered[from], Pattern(from, root, size_of(from, root))), "gathered"));
      }
      BufferPtr data;
      if (me == root) {
        DEEPRC_ASSIGN_OR_RAISE(data, Buffer::CopyOf(mine.data(), std::ssize(mine)));
      }
      DEEPRC_RETURN_NOT_OK(comm.Broadcast(root, &data));
      DEEPRC_RETURN_NOT_OK(Expect(SameBytes(data, Pattern(root, root, size_of(root, root))),
                                  "broadcast bytes"));
    }
    const auto mine = Pattern(me, 9, size_of(me, 1));
    DEEPRC_ASSIGN_OR_RAISE(auto everyone, comm.AllGather(mine));
    for (int from = 0; from < kRanks; ++from) {
      DEEPRC_RETURN_NOT_OK(
          Expect(SameBytes(everyone[from], Pattern(from, 9, size_of(from, 1))), "all-gathered"));
    }
    // Reductions.
    std::vector<int64_t> integers = {me, -me, int64_t{1} << 40};
    DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<int64_t>(integers), ReduceOp::kSum));
    DEEPRC_RETURN_NOT_OK(Expect(integers == std::vector<int64_t>{3, -3, int64_t{3} << 40},
                                "int64 sums"));
    std::vector<double> doubles = {me * 0.5, -1.0 * me};
    DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<double>(doubles), ReduceOp::kMax));
    DEEPRC_RETURN_NOT_OK(Expect(doubles == std::vector<double>{1.0, 0.0}, "double maxima"));
    std::vector<float> floats = {static_cast<float>(me) + 1.5f};
    DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<float>(floats), ReduceOp::kMin));
    DEEPRC_RETURN_NOT_OK(Expect(floats[0] == 1.5f, "float minimum"));
    DEEPRC_RETURN_NOT_OK(comm.Barrier());
    // Bad arguments are errors, not hangs.
    DEEPRC_RETURN_NOT_OK(Expect(!comm.Send(kRanks, 0, {}).ok(), "an error for a rank outside"));
    DEEPRC_RETURN_NOT_OK(Expect(!comm.Receive(0, Communicator::kMaxTag).ok(),
                                "an error for a tag out of range"));
    DEEPRC_RETURN_NOT_OK(Expect(!comm.AllToAll({}).ok(), "an error for missing parts"));
    return comm.Barrier();
  });
  for (int rank = 0; rank < kRanks; ++rank) {
    EXPECT_TRUE(results[rank].ok()) << "rank " << rank << ": " << results[rank].ToString();
  }
}

TEST(GlooThreads, ARankThatLeavesFailsItsPeerInsteadOfHangingIt) {
  SKIP_WITHOUT_GLOO();
  auto results = RunThreadRanks(2, [](Communicator& comm) -> Status {
    DEEPRC_RETURN_NOT_OK(comm.Barrier());
    if (comm.rank() == 1) return Status::OK();  // its communicator closes at once
    const auto start = std::chrono::steady_clock::now();
    auto message = comm.Receive(1, 0);
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    DEEPRC_RETURN_NOT_OK(Expect(!message.ok(), "an error receiving from a rank that left"));
    DEEPRC_RETURN_NOT_OK(Expect(message.status().code() == StatusCode::kIOError,
                                "an IOError, got " + message.status().ToString()));
    DEEPRC_RETURN_NOT_OK(Expect(waited < 10, "a quick error"));
    // The communicator stays failed.
    DEEPRC_RETURN_NOT_OK(Expect(comm.Barrier().code() == StatusCode::kIOError, "still failed"));
    return Status::OK();
  });
  EXPECT_OK(results[0]);
  EXPECT_OK(results[1]);
}

// The job's own communicator, whatever launched it: a barrier and a sum, so that this program is
// a real multi-rank test under every launcher too.
TEST(GlooJob, CommunicatorOfThisJob) {
  Communicator& comm = testing::TestComm();
  ASSERT_OK(comm.Barrier());
  ASSERT_OK_AND_ASSIGN(int64_t ranks, AllReduceValue<int64_t>(comm, 1, ReduceOp::kSum));
  EXPECT_EQ(ranks, comm.size());
}

}  // namespace
}  // namespace deeprc::comm
