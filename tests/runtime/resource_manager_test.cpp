#include "deeprc/runtime/resource_manager.h"

#include <set>

#include <gtest/gtest.h>

#include "testing/assertions.h"

namespace deeprc::runtime {
namespace {

ResourceManager Make(std::vector<NodeResources> nodes) {
  auto manager = ResourceManager::Make(std::move(nodes));
  EXPECT_TRUE(manager.ok()) << manager.status().ToString();
  return std::move(manager).ValueOrDie();
}

TEST(ResourceManagerTest, BestFitKeepsLargeHolesWhole) {
  // Node 0 has 8 cores, node 1 has 3: a 2-core rank goes to the smaller hole that fits.
  ResourceManager manager = Make({{8, 0, 0}, {3, 0, 0}});
  Allocation small;
  ASSERT_TRUE(manager.TryAllocate({1, 2, 0, 0}, &small));
  EXPECT_EQ(small.node(0), 1);
  Allocation whole;
  ASSERT_TRUE(manager.TryAllocate({1, 8, 0, 0}, &whole));
  EXPECT_EQ(whole.node(0), 0);
  EXPECT_EQ(manager.available_cores(), 1);
  Allocation too_big;
  EXPECT_FALSE(manager.TryAllocate({1, 2, 0, 0}, &too_big));
  manager.Release(whole);
  EXPECT_EQ(manager.available_cores(), 9);
  EXPECT_EQ(manager.free_cores(0), 8);
}

TEST(ResourceManagerTest, GpusAndCoresAreNamedAndNeverShared) {
  ResourceManager manager = Make({{4, 4, 0}});
  std::set<int32_t> gpus, cores;
  std::vector<Allocation> held;
  for (int i = 0; i < 2; ++i) {
    Allocation allocation;
    ASSERT_TRUE(manager.TryAllocate({1, 2, 2, 0}, &allocation));
    for (int32_t gpu : allocation.gpus(0)) EXPECT_TRUE(gpus.insert(gpu).second);
    for (int32_t core : allocation.cores(0)) EXPECT_TRUE(cores.insert(core).second);
    held.push_back(std::move(allocation));
  }
  EXPECT_EQ(gpus, (std::set<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(manager.available_gpus(), 0);
  Allocation more;
  EXPECT_FALSE(manager.TryAllocate({1, 1, 1, 0}, &more));
  manager.Release(held[0]);
  ASSERT_TRUE(manager.TryAllocate({1, 1, 1, 0}, &more));
  EXPECT_TRUE(held[0].gpus(0)[0] == more.gpus(0)[0] || held[0].gpus(0)[1] == more.gpus(0)[0]);
}

TEST(ResourceManagerTest, MemoryIsCountedPerNode) {
  ResourceManager manager = Make({{4, 0, 1000}});
  Allocation first, second, third;
  ASSERT_TRUE(manager.TryAllocate({1, 1, 0, 600}, &first));
  EXPECT_EQ(manager.free_memory(0), 400);
  EXPECT_FALSE(manager.TryAllocate({1, 1, 0, 600}, &second));  // cores are free, memory is not
  ASSERT_TRUE(manager.TryAllocate({1, 1, 0, 400}, &third));
  manager.Release(first);
  EXPECT_EQ(manager.free_memory(0), 600);
}

TEST(ResourceManagerTest, ManyCoresPerNodeUseSeveralBitmapWords) {
  ResourceManager manager = Make({{130, 0, 0}});
  Allocation allocation;
  ASSERT_TRUE(manager.TryAllocate({1, 130, 0, 0}, &allocation));
  std::set<int32_t> cores(allocation.cores(0).begin(), allocation.cores(0).end());
  EXPECT_EQ(cores.size(), 130u);
  EXPECT_EQ(*cores.rbegin(), 129);
  manager.Release(allocation);
  EXPECT_TRUE(manager.is_core_free(0, 129));
}

TEST(ResourceManagerTest, ReservedNodesAreOnlyForWhoUnreservesThem) {
  ResourceManager manager = Make({{4, 0, 0}, {4, 0, 0}, {4, 0, 0}});
  Allocation busy;
  ASSERT_TRUE(manager.TryAllocate({1, 3, 0, 0}, &busy));
  // A 2-rank × 4-core task reserves the two nodes with the most free cores.
  const std::vector<int32_t> reserved = manager.Reserve({2, 4, 0, 0});
  ASSERT_EQ(reserved.size(), 2u);
  EXPECT_EQ(std::set<int32_t>(reserved.begin(), reserved.end()).count(busy.node(0)), 0u);
  EXPECT_EQ(manager.available_cores(), 1);
  Allocation other;
  EXPECT_FALSE(manager.TryAllocate({1, 2, 0, 0}, &other));
  manager.Unreserve(reserved);
  EXPECT_EQ(manager.available_cores(), 9);
  ASSERT_TRUE(manager.TryAllocate({2, 4, 0, 0}, &other));
  EXPECT_NE(other.node(0), other.node(1));
}

TEST(ResourceManagerTest, RejectsBadNodes) {
  EXPECT_EQ(ResourceManager::Make({}).status().message(), "a pilot needs at least one node");
  EXPECT_EQ(ResourceManager::Make({{4, 64, 0}}).status().message(),
            "node 0: 64 GPUs, at most 63 per node are supported");
}

}  // namespace
}  // namespace deeprc::runtime
