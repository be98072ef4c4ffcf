// Group-by, unique and whole-table aggregates on the bench ops' data (10M rows by default):
//   groupby: g = i * 7919 mod 100000, v = i (int64); sum(v) by g (100,000 groups)
//   unique:  u = i * 7919 mod (N / 4); distinct u
// Run: ./build/bench/group_by_bench --benchmark_counters_tabular=true
// DEEPRC_BENCH_ROWS overrides N. Counters: rows/s, and peak_MiB, the memory pool's peak during the
// operator above what the input holds.
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "deeprc/compute/group_by.h"
#include "deeprc/compute/set_ops.h"
#include "deeprc/core/memory_pool.h"
#include "deeprc/table/builder.h"

namespace deeprc::compute {
namespace {

int64_t BenchRows() {
  if (const char* env = std::getenv("DEEPRC_BENCH_ROWS")) return std::atoll(env);
  return 10'000'000;
}

Column Int64Column(int64_t n, int64_t (*value)(int64_t, int64_t)) {
  NumberBuilder<int64_t> builder(DataType::Int64());
  (void)builder.Reserve(n);
  for (int64_t i = 0; i < n; ++i) builder.UnsafeAppend(value(i, n));
  return builder.Finish().ValueOrDie();
}

const Table& GroupTable() {
  static const Table table = [] {
    const int64_t n = BenchRows();
    Column g = Int64Column(n, [](int64_t i, int64_t) { return i * 7919 % 100000; });
    Column v = Int64Column(n, [](int64_t i, int64_t) { return i; });
    return Table::Make(Schema({{"g", DataType::Int64()}, {"v", DataType::Int64()}}), {g, v})
        .ValueOrDie();
  }();
  return table;
}

const Table& UniqueTable() {
  static const Table table = [] {
    const int64_t n = BenchRows();
    Column u = Int64Column(n, [](int64_t i, int64_t rows) { return i * 7919 % (rows / 4); });
    return Table::Make(Schema({{"u", DataType::Int64()}}), {u}).ValueOrDie();
  }();
  return table;
}

template <typename Run>
void Measure(benchmark::State& state, const Table& input, Run&& run) {
  int64_t peak = 0;
  for (auto _ : state) {
    // The pool's peak only grows; measure from what is allocated now (the input).
    const int64_t before = DefaultMemoryPool()->bytes_allocated();
    Result<Table> result = run();
    if (!result.ok()) {
      state.SkipWithError(result.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(result->num_rows());
    peak = std::max(peak, DefaultMemoryPool()->peak_bytes_allocated() - before);
    state.counters["out_rows"] = static_cast<double>(result->num_rows());
  }
  state.counters["rows_per_s"] = benchmark::Counter(
      static_cast<double>(input.num_rows()), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_MiB"] = static_cast<double>(peak) / (1 << 20);
}

void BM_GroupBySum(benchmark::State& state) {
  const Table& table = GroupTable();
  GroupByOptions options;
  options.keys = {"g"};
  options.aggregates = {{"v", AggregateKind::kSum}};
  options.threads = static_cast<int>(state.range(0));
  Measure(state, table, [&] { return GroupBy(table, options); });
}
BENCHMARK(BM_GroupBySum)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_GroupByDecomposable(benchmark::State& state) {
  const Table& table = GroupTable();
  GroupByOptions options;
  options.keys = {"g"};
  for (auto kind : {AggregateKind::kSum, AggregateKind::kCount, AggregateKind::kMin,
                    AggregateKind::kMax, AggregateKind::kMean, AggregateKind::kVar}) {
    options.aggregates.push_back({"v", kind});
  }
  options.threads = static_cast<int>(state.range(0));
  Measure(state, table, [&] { return GroupBy(table, options); });
}
BENCHMARK(BM_GroupByDecomposable)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_GroupByMedian(benchmark::State& state) {
  const Table& table = GroupTable();
  GroupByOptions options;
  options.keys = {"g"};
  options.aggregates = {{"v", AggregateKind::kMedian}};
  options.threads = static_cast<int>(state.range(0));
  Measure(state, table, [&] { return GroupBy(table, options); });
}
BENCHMARK(BM_GroupByMedian)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Unique(benchmark::State& state) {
  const Table& table = UniqueTable();
  UniqueOptions options;
  options.threads = static_cast<int>(state.range(0));
  Measure(state, table, [&] { return Unique(table, options); });
}
BENCHMARK(BM_Unique)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// High cardinality: 2.5M groups (u as key, each group of 4 rows).
void BM_GroupByManyGroups(benchmark::State& state) {
  const Table& table = UniqueTable();
  GroupByOptions options;
  options.keys = {"u"};
  options.aggregates = {{"u", AggregateKind::kCount}};
  options.threads = static_cast<int>(state.range(0));
  Measure(state, table, [&] { return GroupBy(table, options); });
}
BENCHMARK(BM_GroupByManyGroups)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_AggregateTable(benchmark::State& state) {
  const Table& table = GroupTable();
  const int threads = static_cast<int>(state.range(0));
  Measure(state, table, [&] {
    return AggregateTable(table, {{"v", AggregateKind::kSum}, {"v", AggregateKind::kMean}},
                          threads);
  });
}
BENCHMARK(BM_AggregateTable)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace deeprc::compute
