// The master's dispatch code against virtual ranks, checked against a brute-force model: the head
// goes to the least loaded ranks (a multi-rank task to idle ones), no rank holds more than
// `depth`, priorities and submission order hold until the head is blocked, later tasks then only
// backfill around the ranks it reserved, and a multi-rank task stays on one node when one has
// room. Backfill onto reserved ranks with learned durations on a virtual clock.
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
        dispatcher.Release(running[at].second, 0);
        --load[static_cast<size_t>(running[at].second)];
        running.erase(running.begin() + static_cast<long>(at));
      } else {
        // The head in the model: highest priority, lowest id.
        auto model_head = [&] {
          return std::min_element(waiting.begin(), waiting.end(), [](auto& a, auto& b) {
            return a.second.first != b.second.first ? a.second.first > b.second.first
                                                    : a.first < b.first;
          });
        };
        dispatcher.Dispatch(0, [&](int64_t id, std::span<const int32_t> chosen) {
          auto head = model_head();
          // Before a reservation only the head starts; after it, later tasks backfill onto
          // ranks that are not reserved (no durations were learned: none onto reserved ones).
          const auto& reserved = dispatcher.reserved();
          if (reserved.empty()) {
            ASSERT_EQ(id, head->first) << "not the head of the queue";
          } else {
            ASSERT_NE(id, head->first) << "the blocked head started in the backfill";
            head = waiting.find(id);
            ASSERT_NE(head, waiting.end());
            for (int32_t rank : chosen) {
              EXPECT_EQ(std::count(reserved.begin(), reserved.end(), rank), 0)
                  << "task " << id << " backfilled onto reserved rank " << rank;
            }
          }
          ASSERT_EQ(static_cast<int32_t>(chosen.size()), head->second.second);
          ASSERT_TRUE(std::is_sorted(chosen.begin(), chosen.end()));
          ASSERT_EQ(std::set<int32_t>(chosen.begin(), chosen.end()).size(), chosen.size());
          if (chosen.size() > 1) {
            // Multi-rank tasks go to idle ranks only.
            for (int32_t rank : chosen) EXPECT_EQ(load[static_cast<size_t>(rank)], 0);
          } else if (reserved.empty()) {
            // Least loaded.
            EXPECT_EQ(load[static_cast<size_t>(chosen[0])],
                      *std::min_element(load.begin(), load.end()));
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
          auto head = model_head();
          const int32_t k = head->second.second;
          const int32_t fit = static_cast<int32_t>(std::count_if(
              load.begin(), load.end(), [&](int32_t l) { return k == 1 ? l < depth : l == 0; }));
          EXPECT_LT(fit, k);
          EXPECT_EQ(static_cast<int32_t>(dispatcher.reserved().size()), k);
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
  dispatcher.Dispatch(0, [&](int64_t, std::span<const int32_t> ranks) {
    assigned.emplace_back(ranks.begin(), ranks.end());
  });
  ASSERT_EQ(assigned.size(), 2u);
  // One rank of one node is taken; the 3-rank task goes to the other node, whole.
  const int32_t used_node = assigned[0][0] % 2;
  ASSERT_EQ(assigned[1].size(), 3u);
  for (int32_t rank : assigned[1]) EXPECT_NE(rank % 2, used_node);
}

TEST(DispatcherTest, BackfillOntoReservedRanksOnlyWhatEndsBeforeTheReservedStart) {
  std::mt19937_64 random(std::random_device{}());
  const int32_t ranks = std::uniform_int_distribution<int32_t>(2, 8)(random);
  const int64_t duration = std::uniform_int_distribution<int64_t>(1000, 50000)(random);
  const int32_t kShort = 0, kWide = 1, kUnseen = 2;
  Dispatcher dispatcher(std::vector<int32_t>(static_cast<size_t>(ranks), 0), 4);
  std::vector<std::pair<int64_t, std::vector<int32_t>>> assigned;
  auto dispatch = [&](int64_t now) {
    assigned.clear();
    dispatcher.Dispatch(now, [&](int64_t id, std::span<const int32_t> chosen) {
      assigned.emplace_back(id, std::vector<int32_t>(chosen.begin(), chosen.end()));
    });
  };
  // Learn the short kind: one run of `duration` on rank r.
  int64_t now = 1'000'000;
  dispatcher.Push(1, 0, 1, kShort);
  dispatch(now);
  ASSERT_EQ(assigned.size(), 1u);
  now += duration;
  dispatcher.Release(assigned[0].second[0], now);
  ASSERT_EQ(dispatcher.estimate_us(kShort), duration);
  ASSERT_EQ(dispatcher.estimate_us(kUnseen), -1);

  // One rank busy for `duration`, then a task over all ranks: it is blocked and reserves all.
  dispatcher.Push(2, 0, 1, kShort);
  dispatcher.Push(3, 0, ranks, kWide);
  // The short task fits the gap exactly (it ends when the busy rank does); the unseen one never
  // goes onto reserved ranks.
  dispatcher.Push(4, 0, 1, kUnseen);
  dispatcher.Push(5, 0, 1, kShort);
  dispatch(now);
  ASSERT_EQ(static_cast<int32_t>(dispatcher.reserved().size()), ranks);
  ASSERT_EQ(assigned.size(), 2u);
  EXPECT_EQ(assigned[0].first, 2);
  EXPECT_EQ(assigned[1].first, 5);
  EXPECT_NE(assigned[1].second[0], assigned[0].second[0]);
  const int32_t first_rank = assigned[0].second[0], second_rank = assigned[1].second[0];
  // Later, the same short task would end after the reserved start: it waits.
  dispatcher.Push(6, 0, 1, kShort);
  dispatch(now + duration / 2);
  EXPECT_TRUE(assigned.empty());
  EXPECT_EQ(dispatcher.queued(), 3);
  // Both short tasks end: the wide one starts first, the others queue behind it.
  dispatcher.Release(first_rank, now + duration);
  dispatcher.Release(second_rank, now + duration);
  dispatch(now + duration);
  ASSERT_EQ(assigned.size(), 3u);
  EXPECT_EQ(assigned[0].first, 3);
  EXPECT_EQ(static_cast<int32_t>(assigned[0].second.size()), ranks);
  EXPECT_EQ(assigned[1].first, 4);
  EXPECT_EQ(assigned[2].first, 6);
  EXPECT_TRUE(dispatcher.reserved().empty());
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
    dispatcher.Dispatch(0, [&](int64_t id, std::span<const int32_t>) { order.push_back(id); });
    dispatcher.Release(0, 0);
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
