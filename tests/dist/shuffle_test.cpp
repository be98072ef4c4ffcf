#include "deeprc/dist/shuffle.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "deeprc/compute/hash.h"
#include "deeprc/compute/selection.h"
#include "deeprc/table/builder.h"
#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/ranks.h"
#include "testing/table_compare.h"

namespace deeprc::dist {
namespace {

using testing::TestComm;

// Rows [begin, end) of a global table that rank `rank` of `size` holds: uneven, and rank 1 (when
// there is one) holds nothing.
std::pair<int64_t, int64_t> SliceOf(int64_t rows, int rank, int size) {
  std::vector<double> weights;
  for (int r = 0; r < size; ++r) weights.push_back(r == 1 ? 0.0 : 1.0 + 2.0 * r);
  double total = 0;
  for (double w : weights) total += w;
  double before = 0;
  for (int r = 0; r < rank; ++r) before += weights[r];
  const auto begin = static_cast<int64_t>(rows * before / total);
  const auto end = rank + 1 == size ? rows : static_cast<int64_t>(rows * (before + weights[rank]) / total);
  return {begin, end};
}

Table LocalSlice(const Table& global, int rank, int size) {
  auto [begin, end] = SliceOf(global.num_rows(), rank, size);
  return global.Slice(begin, end - begin);
}

// The exact bytes of a row's key (nulls apart from every value; -0.0 as 0.0).
std::string KeyOf(const Table& table, const std::vector<int>& keys, int64_t row) {
  std::string out;
  for (int k : keys) {
    const Column& column = table.column(k);
    if (column.IsNull(row)) {
      out += "N;";
      continue;
    }
    out += 'V';
    VisitType(column.type_id(), [&]<typename Tag>(Tag) {
      if constexpr (std::is_same_v<Tag, BoolTag>) {
        out += column.GetBool(row) ? '1' : '0';
      } else if constexpr (std::is_same_v<Tag, StringTag>) {
        const auto text = column.GetString(row);
        out += std::to_string(text.size()) + ":" + std::string(text);
      } else {
        const auto value = compute::NormalizeKey(column.Value<typename Tag::CType>(row));
        out.append(reinterpret_cast<const char*>(&value), sizeof(value));
      }
    });
    out += ';';
  }
  return out;
}

// Shuffles this rank's slice of `global` and checks, on every rank: every key ended on exactly
// one rank, the one its hash names, and the rows are the global rows (as a multiset).
void CheckShuffle(const Table& global, const std::vector<int>& keys,
                  const ShuffleOptions& options = {}) {
  comm::Communicator& comm = TestComm();
  const Table mine = LocalSlice(global, comm.rank(), comm.size());
  ASSERT_OK_AND_ASSIGN(Table shuffled, Shuffle(comm, mine, keys, options));
  EXPECT_TRUE(shuffled.schema() == global.schema());
  // Every row here is one this rank's hash names.
  ASSERT_OK_AND_ASSIGN(auto targets, HashPartitionTargets(shuffled, keys, comm.size()));
  for (int32_t target : targets) {
    ASSERT_EQ(target, comm.rank());
  }
  ASSERT_OK_AND_ASSIGN(auto gathered, comm::AllGatherTables(comm, shuffled));
  // No key on two ranks.
  std::map<std::string, int> owner;
  for (int r = 0; r < static_cast<int>(gathered.size()); ++r) {
    for (int64_t i = 0; i < gathered[r].num_rows(); ++i) {
      auto [at, inserted] = owner.emplace(KeyOf(gathered[r], keys, i), r);
      ASSERT_EQ(at->second, r) << "a key is on ranks " << at->second << " and " << r;
    }
  }
  ASSERT_OK_AND_ASSIGN(Table all, compute::Concatenate(gathered));
  EXPECT_EQ(all.num_rows(), global.num_rows());
  EXPECT_TRUE(testing::TablesEqualUnordered(global, all));
}

TEST(ShuffleTest, EveryKeyTypeWithNulls) {
  auto specs = testing::AllTypesSpec(0.15, 300);
  specs.push_back({"payload", DataType::String(), 0.1});
  const Table global = testing::RandomTable(specs, 10000, 101);
  for (int key = 0; key + 1 < global.num_columns(); ++key) {
    SCOPED_TRACE("key " + global.schema().field(key).name);
    CheckShuffle(global, {key});
  }
}

TEST(ShuffleTest, MultiColumnKeys) {
  const Table global = testing::RandomTable({{"a", DataType::Int32(), 0.1, 20},
                                             {"s", DataType::String(), 0.1, 30},
                                             {"d", DataType::Float64(), 0.1, 10},
                                             {"v", DataType::Int64()}},
                                            30000, 102);
  CheckShuffle(global, {0, 1});
  CheckShuffle(global, {1, 2, 0});
}

TEST(ShuffleTest, SkewNinetyPercentOnOneKey) {
  const Table global = testing::RandomTable(
      {{"k", DataType::Int64(), 0.0, 1000, 0.9}, {"s", DataType::String(), 0.1, 0, 0.9},
       {"v", DataType::Float64()}},
      40000, 103);
  CheckShuffle(global, {0});
  CheckShuffle(global, {1});
}

TEST(ShuffleTest, EmptyTablesAndAllRowsOnOneRank) {
  comm::Communicator& comm = TestComm();
  const Table global = testing::RandomTable(
      {{"k", DataType::String(), 0.1, 100}, {"v", DataType::Int64()}}, 5000, 104);
  // Nobody has rows.
  CheckShuffle(global.Slice(0, 0), {0});
  // Only the last rank has rows.
  const Table mine = comm.rank() + 1 == comm.size() ? global : global.Slice(0, 0);
  ASSERT_OK_AND_ASSIGN(Table shuffled, Shuffle(comm, mine, {0}));
  ASSERT_OK_AND_ASSIGN(auto gathered, comm::AllGatherTables(comm, shuffled));
  ASSERT_OK_AND_ASSIGN(Table all, compute::Concatenate(gathered));
  EXPECT_TRUE(testing::TablesEqualUnordered(global, all));
}

TEST(ShuffleTest, SmallChunksAndCompression) {
  const Table global = testing::RandomTable(
      {{"k", DataType::Int64(), 0.05, 500}, {"s", DataType::String(), 0.2}, {"b", DataType::Bool()},
       {"f", DataType::Float32()}},
      30000, 105);
  ShuffleOptions options;
  options.chunk_bytes = 4096;  // many chunks
  CheckShuffle(global, {0}, options);
  options.chunk_bytes = 100000;
  options.exchange.compression = TableFileCompression::kZstd;
  CheckShuffle(global, {1}, options);
}

TEST(ShuffleTest, ExchangeKeepsSourceThenRowOrder) {
  comm::Communicator& comm = TestComm();
  const int size = comm.size();
  const Table global = testing::RandomTable(testing::AllTypesSpec(0.1), 10000, 106);
  auto target_of = [&](int64_t global_row) {
    return static_cast<int32_t>((global_row * 7 + global_row / 13) % size);
  };
  auto [begin, end] = SliceOf(global.num_rows(), comm.rank(), size);
  std::vector<int32_t> targets;
  for (int64_t i = begin; i < end; ++i) targets.push_back(target_of(i));
  ShuffleOptions options;
  options.chunk_bytes = 20000;
  ASSERT_OK_AND_ASSIGN(Table received,
                       Exchange(comm, global.Slice(begin, end - begin), targets, options));
  // Expected: the rows for this rank, source by source, each source in its order. Sources are
  // contiguous slices of the global table in rank order, so that is global order.
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < global.num_rows(); ++i) {
    if (target_of(i) == comm.rank()) rows.push_back(i);
  }
  ASSERT_OK_AND_ASSIGN(Table expected, compute::Take(global, rows));
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, received));
}

// Exchange of this rank's slice of `global` with targets target_of(global row); checks that the
// rows arrive in (source rank, source order) order, which for contiguous slices is global order.
template <typename TargetOf>
void CheckExchangeOrder(const Table& global, TargetOf&& target_of, const ShuffleOptions& options) {
  comm::Communicator& comm = TestComm();
  auto [begin, end] = SliceOf(global.num_rows(), comm.rank(), comm.size());
  std::vector<int32_t> targets;
  for (int64_t i = begin; i < end; ++i) targets.push_back(target_of(i));
  ASSERT_OK_AND_ASSIGN(Table received,
                       Exchange(comm, global.Slice(begin, end - begin), targets, options));
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < global.num_rows(); ++i) {
    if (target_of(i) == comm.rank()) rows.push_back(i);
  }
  ASSERT_OK_AND_ASSIGN(Table expected, compute::Take(global, rows));
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, received));
  // Null counts are exact (the bitmaps are rebuilt from bytes on the wire).
  for (int c = 0; c < received.num_columns(); ++c) {
    EXPECT_EQ(received.column(c).null_count(), expected.column(c).null_count()) << "column " << c;
  }
}

TEST(ShuffleTest, InPlaceExchangeOfEveryBufferKind) {
  comm::Communicator& comm = TestComm();
  const int size = comm.size();
  // Bools and strings with nulls, empty strings, dates and timestamps, a column without nulls;
  // odd row counts so that bitmaps end mid-byte and slices start mid-byte.
  auto specs = testing::AllTypesSpec(0.2, 0);
  specs.push_back({"short", DataType::String(), 0.3, 3});  // few values, the empty one among them
  specs.push_back({"dense", DataType::Int32(), 0.0});
  const Table big = testing::RandomTable(specs, 7777, 109);
  const Table small = big.Slice(100, 61);
  for (int threads : {1, 3}) {
    for (int64_t chunk : {int64_t{64} << 20, int64_t{30000}, int64_t{1}}) {
      for (int64_t fuse_below : {int64_t{0}, int64_t{1} << 40}) {  // in place; one message
        // 1 byte: one round per row, on few rows.
        const Table& global = chunk == 1 ? small : big;
        SCOPED_TRACE("threads " + std::to_string(threads) + " chunk " + std::to_string(chunk) +
                     " fuse below " + std::to_string(fuse_below));
        ShuffleOptions options;
        options.threads = threads;
        options.chunk_bytes = chunk;
        options.fuse_below_bytes = fuse_below;
        CheckExchangeOrder(
            global, [&](int64_t row) { return static_cast<int32_t>((row * 13 + row / 7) % size); },
            options);
        // Everything to the last rank.
        CheckExchangeOrder(
            global, [&](int64_t) { return size - 1; }, options);
        // Each rank keeps its own rows (nothing travels).
        CheckExchangeOrder(
            global,
            [&](int64_t row) {
              for (int r = 0; r < size; ++r) {
                auto [begin, end] = SliceOf(global.num_rows(), r, size);
                if (row >= begin && row < end) return r;
              }
              return 0;
            },
            options);
      }
    }
  }
}

TEST(ShuffleTest, NullsOnSomeRanksOnly) {
  comm::Communicator& comm = TestComm();
  // Rank 0's rows have nulls, the others' none: every receiver still gets exact validity.
  const Table with_nulls = testing::RandomTable(
      {{"b", DataType::Bool(), 0.3}, {"s", DataType::String(), 0.3}, {"i", DataType::Int64(), 0.3}},
      999, 110);
  const Table without = testing::RandomTable(
      {{"b", DataType::Bool(), 0.0}, {"s", DataType::String(), 0.0}, {"i", DataType::Int64(), 0.0}},
      1001, 111);
  const Table& mine = comm.rank() == 0 ? with_nulls : without;
  std::vector<int32_t> targets(static_cast<size_t>(mine.num_rows()));
  for (size_t i = 0; i < targets.size(); ++i) targets[i] = static_cast<int32_t>(i % comm.size());
  ShuffleOptions options;
  options.chunk_bytes = 5000;
  options.fuse_below_bytes = 0;
  ASSERT_OK_AND_ASSIGN(Table received, Exchange(comm, mine, targets, options));
  ASSERT_OK_AND_ASSIGN(auto gathered, comm::AllGatherTables(comm, received));
  ASSERT_OK_AND_ASSIGN(Table all, compute::Concatenate(gathered));
  std::vector<Table> inputs = {with_nulls};
  for (int r = 1; r < comm.size(); ++r) inputs.push_back(without);
  ASSERT_OK_AND_ASSIGN(Table expected, compute::Concatenate(inputs));
  EXPECT_TRUE(testing::TablesEqualUnordered(expected, all));
  int64_t nulls = 0;
  for (const auto& column : received.columns()) nulls += column.null_count();
  ASSERT_OK_AND_ASSIGN(int64_t total, comm::AllReduceValue(comm, nulls, comm::ReduceOp::kSum));
  int64_t expected_nulls = 0;
  for (const auto& column : with_nulls.columns()) expected_nulls += column.null_count();
  EXPECT_EQ(total, expected_nulls);
}

TEST(ShuffleTest, DifferentSchemasFailOnEveryRank) {
  comm::Communicator& comm = TestComm();
  if (comm.size() == 1) GTEST_SKIP() << "needs two ranks";
  const Table table = testing::RandomTable(
      {{"v", comm.rank() == 0 ? DataType::Int32() : DataType::Int64()}}, 50, 112);
  EXPECT_FALSE(Exchange(comm, table, std::vector<int32_t>(50, 0)).ok());
  // The communicator still works afterwards.
  ASSERT_OK_AND_ASSIGN(int64_t ranks, comm::AllReduceValue<int64_t>(comm, 1, comm::ReduceOp::kSum));
  EXPECT_EQ(ranks, comm.size());
}

TEST(ShuffleTest, BadTargetsFailOnEveryRank) {
  comm::Communicator& comm = TestComm();
  const Table table = testing::RandomTable({{"v", DataType::Int64()}}, 100, 107);
  std::vector<int32_t> targets(100, 0);
  if (comm.rank() == 0) targets[50] = comm.size();  // out of range on rank 0 only
  EXPECT_FALSE(Exchange(comm, table, targets).ok());
  std::vector<int32_t> short_targets(comm.rank() == 0 ? 99 : 100, 0);
  EXPECT_FALSE(Exchange(comm, table, short_targets).ok());
  // And the communicator still works afterwards.
  ASSERT_OK_AND_ASSIGN(Table fine, Exchange(comm, table, std::vector<int32_t>(100, 0)));
  EXPECT_EQ(fine.num_rows(), comm.rank() == 0 ? 100 * comm.size() : 0);
}

TEST(ShuffleTest, TargetsDependOnTheValueOnly) {
  // The same value gets the same rank in any table, slice or position.
  const Table global = testing::RandomTable(
      {{"s", DataType::String(), 0.2, 50}, {"i", DataType::Int16(), 0.2, 50}}, 5000, 108);
  for (int ranks : {1, 2, 3, 4, 7}) {
    ASSERT_OK_AND_ASSIGN(auto whole, HashPartitionTargets(global, {0, 1}, ranks));
    ASSERT_OK_AND_ASSIGN(auto part, HashPartitionTargets(global.Slice(1234, 777), {0, 1}, ranks, 3));
    for (int64_t i = 0; i < 777; ++i) ASSERT_EQ(part[i], whole[1234 + i]);
    std::map<std::string, int32_t> seen;
    for (int64_t i = 0; i < global.num_rows(); ++i) {
      ASSERT_GE(whole[i], 0);
      ASSERT_LT(whole[i], ranks);
      auto [at, inserted] = seen.emplace(KeyOf(global, {0, 1}, i), whole[i]);
      ASSERT_EQ(at->second, whole[i]);
    }
  }
  EXPECT_FALSE(HashPartitionTargets(global, {5}, 2).ok());
  EXPECT_FALSE(HashPartitionTargets(global, {0}, 0).ok());
}

TEST(ShuffleTest, RanksAreBalancedAndIndependentOfTheLocalHashBits) {
  // Consecutive integers: a weak hash would put them on ranks by their low bits.
  const int64_t rows = 1 << 18;
  NumberBuilder<int64_t> builder(DataType::Int64());
  for (int64_t i = 0; i < rows; ++i) ASSERT_OK(builder.Append(i));
  ASSERT_OK_AND_ASSIGN(Column column, builder.Finish());
  ASSERT_OK_AND_ASSIGN(Table table, Table::Make(Schema({{"k", DataType::Int64()}}), {column}));
  std::vector<uint64_t> hashes(rows);
  compute::HashColumn(column, 0, rows, false, hashes.data());
  for (int ranks : {2, 4, 8}) {
    ASSERT_OK_AND_ASSIGN(auto targets, HashPartitionTargets(table, {0}, ranks));
    // Per rank: how many rows, and how they spread over the hash's top 4 bits (the local hash
    // join's partitions) and low 4 bits (its table slots).
    std::vector<int64_t> count(ranks, 0);
    std::vector<std::vector<int64_t>> top(ranks, std::vector<int64_t>(16, 0));
    std::vector<std::vector<int64_t>> low(ranks, std::vector<int64_t>(16, 0));
    for (int64_t i = 0; i < rows; ++i) {
      ++count[targets[i]];
      ++top[targets[i]][hashes[i] >> 60];
      ++low[targets[i]][hashes[i] & 15];
    }
    for (int r = 0; r < ranks; ++r) {
      const double share = static_cast<double>(count[r]) / rows;
      EXPECT_NEAR(share, 1.0 / ranks, 0.01) << "rank " << r << " of " << ranks;
      for (int b = 0; b < 16; ++b) {
        EXPECT_NEAR(static_cast<double>(top[r][b]) / count[r], 1.0 / 16, 0.01);
        EXPECT_NEAR(static_cast<double>(low[r][b]) / count[r], 1.0 / 16, 0.01);
      }
    }
  }
}

// More than 2 GiB of string bytes through the shuffle (64-bit offsets and sizes all the way):
// every row has the same key, so one rank receives the whole column. Minutes and ~10 GiB of
// memory: only with DEEPRC_LONG_TESTS (scripts/test.sh --long).
TEST(ShuffleTest, LongStringColumnOverTwoGigabytes) {
  if (std::getenv("DEEPRC_LONG_TESTS") == nullptr) {
    GTEST_SKIP() << "set DEEPRC_LONG_TESTS=1 (scripts/test.sh --long) to shuffle a 2 GiB+ "
                    "string column";
  }
  comm::Communicator& comm = TestComm();
  const int64_t value_bytes = 4000;
  const int64_t rows_total = ((int64_t{9} << 30) / 4) / value_bytes;  // 2.25 GiB of strings
  const int64_t per_rank = rows_total / comm.size();
  const int64_t first_row = comm.rank() * per_rank;
  const int64_t rows = comm.rank() + 1 == comm.size() ? rows_total - first_row : per_rank;
  StringBuilder strings;
  NumberBuilder<int64_t> ids(DataType::Int64());
  NumberBuilder<int32_t> keys(DataType::Int32());
  std::string value(static_cast<size_t>(value_bytes), 'x');
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t id = first_row + i;
    std::memcpy(value.data(), &id, sizeof(id));
    value[8] = static_cast<char>('a' + id % 26);
    ASSERT_OK(strings.Append(value));
    ASSERT_OK(ids.Append(id));
    ASSERT_OK(keys.Append(7));
  }
  ASSERT_OK_AND_ASSIGN(Column s, strings.Finish());
  ASSERT_OK_AND_ASSIGN(Column id, ids.Finish());
  ASSERT_OK_AND_ASSIGN(Column k, keys.Finish());
  ASSERT_OK_AND_ASSIGN(Table table, Table::Make(Schema({{"k", DataType::Int32()},
                                                        {"id", DataType::Int64()},
                                                        {"s", DataType::String()}}),
                                                {k, id, s}));
  ASSERT_OK_AND_ASSIGN(Table shuffled, Shuffle(comm, table, {0}));
  table = Table();
  ASSERT_OK_AND_ASSIGN(auto targets, HashPartitionTargets(shuffled, {0}, comm.size()));
  int64_t bad = 0;
  int64_t id_sum = 0;
  const Column& got_ids = shuffled.column(1);
  const Column& got_strings = shuffled.column(2);
  for (int64_t i = 0; i < shuffled.num_rows(); ++i) {
    const int64_t row_id = got_ids.Value<int64_t>(i);
    const std::string_view text = got_strings.GetString(i);
    int64_t stored = -1;
    if (text.size() >= sizeof(stored)) std::memcpy(&stored, text.data(), sizeof(stored));
    if (targets[i] != comm.rank() || static_cast<int64_t>(text.size()) != value_bytes ||
        stored != row_id || text[8] != static_cast<char>('a' + row_id % 26) ||
        text.back() != 'x') {
      ++bad;
    }
    id_sum += row_id;
  }
  EXPECT_EQ(bad, 0);
  if (shuffled.num_rows() > 0) {
    EXPECT_EQ(shuffled.num_rows(), rows_total) << "one key: every row on one rank";
    EXPECT_GT(got_strings.StringOffsets()[shuffled.num_rows()] - got_strings.StringOffsets()[0],
              int64_t{2} << 30);
  }
  int64_t totals[2] = {shuffled.num_rows(), id_sum};
  ASSERT_OK(comm.AllReduce(std::span<int64_t>(totals, 2), comm::ReduceOp::kSum));
  EXPECT_EQ(totals[0], rows_total);
  EXPECT_EQ(totals[1], rows_total * (rows_total - 1) / 2);
}

}  // namespace
}  // namespace deeprc::dist
