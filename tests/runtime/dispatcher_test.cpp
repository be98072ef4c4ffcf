// The master's dispatch code against virtual ranks, checked against a brute-force model: every
// assignment goes to the least loaded ranks, no rank holds more than `depth`, priorities and
// submission order hold, and a multi-rank task stays on one node when one has room.
#include "runtime/dispatcher_internal.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

namespace deeprc::runtime::internal {
namespace {

TEST(DispatcherTest, RandomWorkloadMatchesTheModel) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  for (int round = 0; round < 20; ++round) {
    const int32_t ranks = std::uniform_int_distribution<int32_t>(1, 24)(random);
    const int32_t nodes = std::uniform_int_distribution<int32_t>(1, 3)(random);
    const int32_t depth = std::uniform_int_distribution<int32_t>(1, 4)(random);
    std::vector<int32_t> rank_nodes(static_cast<size_t>(ranks));
    for (auto& node : rank_nodes)
      node = std::uniform_int_distribution<int32_t>(0, nodes - 1)(random);
    Dispatcher dispatcher(rank_nodes, depth);
    std::vector<int32_t> load(static_cast<size_t>(ranks), 0);
    std::map<int64_t, std::pair<int32_t, int32_t>> waiting;  // id → (priority, ranks)
    std::vector<std::pair<int64_t, int32_t>> running;        // (id, rank) assignments
    int64_t next_id = 0;
    for (int step = 0; step < 400; ++step) {
      const int action = std::uniform_int_distribution<int>(0, 2)(random);
      if (action == 0) {
        const int32_t priority = std::uniform_int_distribution<int32_t>(0, 2)(random);
        const int32_t k = std::uniform_int_distribution<int32_t>(1, std::min(ranks, 4))(random);
        dispatcher.Push(next_id, priority, k);
        waiting[next_id++] = {priority, k};
      } else if (action == 1 && !running.empty()) {
        const size_t at = std::uniform_int_distribution<size_t>(0, running.size() - 1)(random);
        dispatcher.Release(running[at].second);
        --load[static_cast<size_t>(running[at].second)];
        running.erase(running.begin() + static_cast<long>(at));
      } else {
        // The head in the model: highest priority, lowest id.
        dispatcher.Dispatch([&](int64_t id, std::span<const int32_t> chosen) {
          auto head = std::min_element(waiting.begin(), waiting.end(), [](auto& a, auto& b) {
            return a.second.first != b.second.first ? a.second.first > b.second.first
                                                    : a.first < b.first;
          });
          ASSERT_EQ(id, head->first) << "not the head of the queue";
          ASSERT_EQ(static_cast<int32_t>(chosen.size()), head->second.second);
          ASSERT_TRUE(std::is_sorted(chosen.begin(), chosen.end()));
          ASSERT_EQ(std::set<int32_t>(chosen.begin(), chosen.end()).size(), chosen.size());
          // Least loaded: no rank left out is less loaded than a chosen one, unless the
          // choice kept the task on one node.
          std::set<int32_t> chosen_nodes;
          for (int32_t rank : chosen) chosen_nodes.insert(rank_nodes[static_cast<size_t>(rank)]);
          const int32_t max_chosen =
              *std::max_element(chosen.begin(), chosen.end(), [&](int32_t a, int32_t b) {
                return load[static_cast<size_t>(a)] < load[static_cast<size_t>(b)];
              });
          for (int32_t rank = 0; rank < ranks; ++rank) {
            if (std::find(chosen.begin(), chosen.end(), rank) != chosen.end()) continue;
            if (chosen_nodes.size() == 1 && chosen.size() > 1 &&
                rank_nodes[static_cast<size_t>(rank)] != *chosen_nodes.begin()) {
              continue;
            }
            EXPECT_GE(load[static_cast<size_t>(rank)], load[static_cast<size_t>(max_chosen)]);
          }
          for (int32_t rank : chosen) {
            ASSERT_LT(load[static_cast<size_t>(rank)], depth);
            ++load[static_cast<size_t>(rank)];
            running.push_back({id, rank});
          }
          waiting.erase(head);
        });
        // It stopped because the head does not fit (or nothing waits).
        if (!waiting.empty()) {
          auto head = std::min_element(waiting.begin(), waiting.end(), [](auto& a, auto& b) {
            return a.second.first != b.second.first ? a.second.first > b.second.first
                                                    : a.first < b.first;
          });
          const int32_t free = static_cast<int32_t>(
              std::count_if(load.begin(), load.end(), [&](int32_t l) { return l < depth; }));
          EXPECT_LT(free, head->second.second);
        }
      }
      for (int32_t rank = 0; rank < ranks; ++rank) {
        ASSERT_EQ(dispatcher.load(rank), load[static_cast<size_t>(rank)]);
      }
      ASSERT_EQ(dispatcher.queued(), static_cast<int64_t>(waiting.size()));
    }
  }
}

TEST(DispatcherTest, MultiRankTaskStaysOnOneNodeWhenOneHasRoom) {
  // Ranks 0, 2, 4 on node 0; 1, 3, 5 on node 1.
  Dispatcher dispatcher({0, 1, 0, 1, 0, 1}, 1);
  std::vector<std::vector<int32_t>> assigned;
  dispatcher.Push(1, 0, 1);
  dispatcher.Push(2, 0, 3);
  dispatcher.Dispatch([&](int64_t, std::span<const int32_t> ranks) {
    assigned.emplace_back(ranks.begin(), ranks.end());
  });
  ASSERT_EQ(assigned.size(), 2u);
  // One rank of one node is taken; the 3-rank task goes to the other node, whole.
  const int32_t used_node = assigned[0][0] % 2;
  ASSERT_EQ(assigned[1].size(), 3u);
  for (int32_t rank : assigned[1]) EXPECT_NE(rank % 2, used_node);
}

TEST(DispatcherTest, RemoveAndPushFrontKeepTheOrder) {
  Dispatcher dispatcher({0}, 1);
  dispatcher.Push(1, 0, 1);
  dispatcher.Push(2, 0, 1);
  dispatcher.Push(3, 5, 1);
  EXPECT_TRUE(dispatcher.Remove(2, 0));
  EXPECT_FALSE(dispatcher.Remove(2, 0));
  dispatcher.PushFront(9, 0, 1);
  EXPECT_EQ(dispatcher.QueuedIds(), (std::vector<int64_t>{3, 9, 1}));
  std::vector<int64_t> order;
  for (int i = 0; i < 3; ++i) {
    dispatcher.Dispatch([&](int64_t id, std::span<const int32_t>) { order.push_back(id); });
    dispatcher.Release(0);
  }
  EXPECT_EQ(order, (std::vector<int64_t>{3, 9, 1}));
}

}  // namespace
}  // namespace deeprc::runtime::internal

#include "deeprc/runtime/pool.h"

namespace deeprc::runtime {
namespace {

TEST(DispatchSimulationTest, EveryTaskIsAssignedOnce) {
  std::mt19937 random(std::random_device{}());
  DispatchSimulationOptions options;
  options.masters = std::uniform_int_distribution<int32_t>(1, 8)(random);
  options.workers_per_master = std::uniform_int_distribution<int32_t>(4, 40)(random);
  options.workers_per_node = 4;
  options.tasks = std::uniform_int_distribution<int64_t>(0, 20000)(random);
  options.widths = {1, 2, 4};
  options.pipeline_depth = std::uniform_int_distribution<int32_t>(1, 8)(random);
  options.seed = random();
  auto result = SimulateDispatch(options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->tasks, options.tasks);
  // Widths 1, 2, 4 drawn with the seed: every rank of every task assigned once.
  std::mt19937_64 replay(options.seed);
  std::uniform_int_distribution<size_t> pick(0, 2);
  int64_t expected = 0;
  for (int64_t i = 0; i < options.tasks; ++i) expected += options.widths[pick(replay)];
  EXPECT_EQ(result->assignments, expected);
  options.widths = {options.workers_per_master + 1};
  EXPECT_FALSE(SimulateDispatch(options).ok());
}

}  // namespace
}  // namespace deeprc::runtime
