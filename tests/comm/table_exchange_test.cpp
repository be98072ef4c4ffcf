#include "deeprc/comm/table_exchange.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "deeprc/core/memory_pool.h"
#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/ranks.h"
#include "testing/table_compare.h"

namespace deeprc::comm {
namespace {

using testing::TestComm;

std::vector<testing::RandomColumnSpec> Specs() {
  auto specs = testing::AllTypesSpec(0.2, 50);  // repeated values so that compression bites
  specs.push_back({"ts_zone", DataType::Timestamp(TimeUnit::kNano, "Europe/Paris"), 0.1});
  specs.push_back({"no_nulls", DataType::Int64(), 0.0});
  specs.push_back({"all_null", DataType::String(), 1.0});
  specs.push_back({"text", DataType::String(), 0.05});
  return specs;
}

std::vector<TableFileCompression> Compressions() {
  std::vector<TableFileCompression> out = {TableFileCompression::kNone,
                                           TableFileCompression::kZstd};
  if (ParseTableFileCompression("lz4").ok()) out.push_back(TableFileCompression::kLz4);
  return out;
}

void ExpectSameTable(const Table& expected, const Table& actual) {
  EXPECT_TRUE(expected.schema() == actual.schema())
      << expected.schema().ToString() << " vs " << actual.schema().ToString();
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, actual));
  for (int c = 0; c < actual.num_columns() && c < expected.num_columns(); ++c) {
    EXPECT_EQ(actual.column(c).null_count(), expected.column(c).null_count());
  }
}

// The table rank `source` sends to rank `destination` in the collectives below: some are empty,
// sizes differ per pair, every type with nulls; the odd ones are unaligned slices.
Table PartFor(int source, int destination) {
  const int64_t rows = (source + 2 * destination) % 3 == 1 ? 0 : 300 + 97 * source + 31 * destination;
  Table table = testing::RandomTable(Specs(), rows + 13, 1000 + 100 * source + destination);
  return (source + destination) % 2 == 1 ? table.Slice(13, rows) : table.Slice(0, rows);
}

TEST(TableExchangeTest, SerializeRoundTripEveryTypeSlicesEmptyAndCompression) {
  const Table whole = testing::RandomTable(Specs(), 4000, 7);
  std::vector<Table> tables = {whole, whole.Slice(3, 2001), whole.Slice(1, 0),
                               Table::Empty(whole.schema()), whole.Slice(3999, 1)};
  for (TableFileCompression compression : Compressions()) {
    for (size_t t = 0; t < tables.size(); ++t) {
      SCOPED_TRACE("compression " + std::to_string(static_cast<int>(compression)) + " table " +
                   std::to_string(t));
      ExchangeOptions options;
      options.compression = compression;
      ASSERT_OK_AND_ASSIGN(BufferPtr message, SerializeTable(tables[t], options));
      ASSERT_OK_AND_ASSIGN(Table back, DeserializeTable(message));
      ExpectSameTable(tables[t], back);
      EXPECT_EQ(back.num_rows(), tables[t].num_rows());
    }
  }
}

TEST(TableExchangeTest, DeserializeSlicesTheMessageAndCopiesOnlyWhenMisaligned) {
  const Table table = testing::RandomTable(Specs(), 20000, 8);
  ASSERT_OK_AND_ASSIGN(BufferPtr message, SerializeTable(table));
  const int64_t before = DefaultMemoryPool()->bytes_allocated();
  ASSERT_OK_AND_ASSIGN(Table back, DeserializeTable(message));
  EXPECT_LT(DefaultMemoryPool()->bytes_allocated() - before, 4096) << "must not copy";
  for (const auto& column : back.columns()) {
    const uint8_t* data = column.values_buffer()->data();
    EXPECT_TRUE(data >= message->data() && data < message->data() + message->size());
  }
  // A message at an odd address (a backend slicing one receive buffer) still reads right.
  ASSERT_OK_AND_ASSIGN(auto shifted, Buffer::Allocate(message->size() + 1));
  std::memcpy(shifted->mutable_data() + 1, message->data(), static_cast<size_t>(message->size()));
  ASSERT_OK_AND_ASSIGN(Table moved, DeserializeTable(Buffer::Slice(shifted, 1, message->size())));
  ExpectSameTable(table, moved);
  // Garbage is an error, not a crash.
  ASSERT_OK_AND_ASSIGN(auto garbage, Buffer::AllocateZeroed(200));
  EXPECT_FALSE(DeserializeTable(garbage).ok());
  EXPECT_FALSE(DeserializeTable(nullptr).ok());
}

TEST(TableExchangeTest, SendAndReceiveAroundARing) {
  Communicator& comm = TestComm();
  const int rank = comm.rank();
  const int size = comm.size();
  const int next = (rank + 1) % size;
  const int previous = (rank + size - 1) % size;
  if (size == 1 && comm.backend() != Backend::kSingle) {
    GTEST_SKIP() << "one rank: a blocking send to itself may wait for its own receive";
  }
  for (TableFileCompression compression : Compressions()) {
    ExchangeOptions options;
    options.compression = compression;
    // Rank 0 sends first, every other rank receives first: no cycle of blocked sends.
    Table received;
    if (rank == 0) {
      ASSERT_OK(SendTable(comm, next, 5, PartFor(rank, next), options));
      ASSERT_OK_AND_ASSIGN(received, ReceiveTable(comm, previous, 5));
    } else {
      ASSERT_OK_AND_ASSIGN(received, ReceiveTable(comm, previous, 5));
      ASSERT_OK(SendTable(comm, next, 5, PartFor(rank, next), options));
    }
    ExpectSameTable(PartFor(previous, rank), received);
  }
}

TEST(TableExchangeTest, AllToAllTables) {
  Communicator& comm = TestComm();
  for (TableFileCompression compression : Compressions()) {
    ExchangeOptions options;
    options.compression = compression;
    std::vector<Table> parts;
    for (int d = 0; d < comm.size(); ++d) parts.push_back(PartFor(comm.rank(), d));
    ASSERT_OK_AND_ASSIGN(auto received, AllToAllTables(comm, parts, options));
    ASSERT_EQ(static_cast<int>(received.size()), comm.size());
    for (int s = 0; s < comm.size(); ++s) {
      SCOPED_TRACE("from rank " + std::to_string(s));
      ExpectSameTable(PartFor(s, comm.rank()), received[s]);
    }
  }
}

TEST(TableExchangeTest, AllToAllOfEmptyTablesKeepsTheSchema) {
  Communicator& comm = TestComm();
  const Table empty = Table::Empty(PartFor(0, 0).schema());
  std::vector<Table> parts(static_cast<size_t>(comm.size()), empty);
  ASSERT_OK_AND_ASSIGN(auto received, AllToAllTables(comm, parts));
  ASSERT_EQ(static_cast<int>(received.size()), comm.size());
  for (const Table& table : received) {
    EXPECT_EQ(table.num_rows(), 0);
    EXPECT_TRUE(table.schema() == empty.schema());
  }
}

TEST(TableExchangeTest, GatherToEveryRoot) {
  Communicator& comm = TestComm();
  for (int root = 0; root < comm.size(); ++root) {
    ASSERT_OK_AND_ASSIGN(auto gathered, GatherTables(comm, root, PartFor(comm.rank(), root)));
    if (comm.rank() != root) {
      EXPECT_TRUE(gathered.empty());
      continue;
    }
    ASSERT_EQ(static_cast<int>(gathered.size()), comm.size());
    for (int s = 0; s < comm.size(); ++s) ExpectSameTable(PartFor(s, root), gathered[s]);
  }
}

TEST(TableExchangeTest, AllGather) {
  Communicator& comm = TestComm();
  ExchangeOptions options;
  options.compression = TableFileCompression::kZstd;
  ASSERT_OK_AND_ASSIGN(auto gathered, AllGatherTables(comm, PartFor(comm.rank(), 1), options));
  ASSERT_EQ(static_cast<int>(gathered.size()), comm.size());
  for (int s = 0; s < comm.size(); ++s) ExpectSameTable(PartFor(s, 1), gathered[s]);
}

TEST(TableExchangeTest, BroadcastFromEveryRoot) {
  Communicator& comm = TestComm();
  for (int root = 0; root < comm.size(); ++root) {
    // Only the root's table counts; the others pass a table of another schema, or nothing.
    const Table mine = comm.rank() == root ? PartFor(root, 0) : Table();
    ASSERT_OK_AND_ASSIGN(Table table, BroadcastTable(comm, root, mine));
    ExpectSameTable(PartFor(root, 0), table);
  }
}

TEST(TableExchangeTest, SchemaDisagreementIsAnErrorOnEveryRank) {
  Communicator& comm = TestComm();
  if (comm.size() == 1) GTEST_SKIP() << "needs two ranks to disagree";
  // Rank 1 has no rows, but its schema still travels and is checked.
  const std::string name = comm.rank() == 1 ? "b" : "a";
  Table table = testing::RandomTable({{name, DataType::Int64()}}, comm.rank() == 1 ? 0 : 50, 3);
  auto gathered = AllGatherTables(comm, table);
  EXPECT_FALSE(gathered.ok());
  std::vector<Table> parts(static_cast<size_t>(comm.size()), table);
  auto exchanged = AllToAllTables(comm, parts);
  EXPECT_FALSE(exchanged.ok());
  if (!exchanged.ok()) {
    EXPECT_NE(exchanged.status().message().find("schema"), std::string::npos);
  }
}

}  // namespace
}  // namespace deeprc::comm
