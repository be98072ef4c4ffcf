// Join micro-benchmarks on the formulas of `deeprc bench table join` (issue 2), so that the peers
// (bench/peers: DuckDB, Polars, pandas) can build identical data:
//   left  (k = i * 7919 mod N,   a = i)
//   right (k = i * 104729 mod N, b = i)     i = 0 .. N-1, int64
// inner join on k: N rows out (both keys are permutations of [0, N) when N is coprime with the
// multipliers, as 10^k is). A second family draws keys uniformly from [0, N) (duplicates and
// misses) with a float64 payload on the right. Arguments: rows, threads. Data generation is not
// timed; the join (matching and materializing every output column) is.
#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <cstdint>
#include <random>
#include <vector>

#include "deeprc/compute/join.h"
#include "deeprc/table/builder.h"

namespace deeprc::compute {
namespace {

Column Int64Column(const std::vector<int64_t>& values) {
  NumberBuilder<int64_t> builder(DataType::Int64());
  (void)builder.Reserve(static_cast<int64_t>(values.size()));
  for (int64_t value : values) builder.UnsafeAppend(value);
  return builder.Finish().ValueOrDie();
}

Column Float64Column(const std::vector<double>& values) {
  NumberBuilder<double> builder(DataType::Float64());
  (void)builder.Reserve(static_cast<int64_t>(values.size()));
  for (double value : values) builder.UnsafeAppend(value);
  return builder.Finish().ValueOrDie();
}

Table MakeTable(const std::vector<std::pair<std::string, Column>>& columns, int64_t rows) {
  std::vector<Field> fields;
  std::vector<Column> data;
  for (const auto& [name, column] : columns) {
    fields.push_back({name, column.type()});
    data.push_back(column);
  }
  return Table::Make(Schema(fields), data, rows).ValueOrDie();
}

// The issue-2 formula: the tables of `deeprc bench table join`.
std::pair<Table, Table> FormulaTables(int64_t n) {
  std::vector<int64_t> lk(n), rk(n), rows(n);
  for (int64_t i = 0; i < n; ++i) {
    lk[i] = static_cast<int64_t>((static_cast<unsigned __int128>(i) * 7919) % n);
    rk[i] = static_cast<int64_t>((static_cast<unsigned __int128>(i) * 104729) % n);
    rows[i] = i;
  }
  const Column row_column = Int64Column(rows);
  return {MakeTable({{"k", Int64Column(lk)}, {"a", row_column}}, n),
          MakeTable({{"k", Int64Column(rk)}, {"b", row_column}}, n)};
}

// Keys uniform in [0, N) on both sides; an int64 payload on the left, float64 on the right.
std::pair<Table, Table> UniformTables(int64_t n) {
  std::mt19937_64 rng(42);
  std::vector<int64_t> lk(n), rk(n), a(n);
  std::vector<double> b(n);
  for (int64_t i = 0; i < n; ++i) {
    lk[i] = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
    rk[i] = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
    a[i] = i;
    b[i] = static_cast<double>(i) * 0.5;
  }
  return {MakeTable({{"k", Int64Column(lk)}, {"a", Int64Column(a)}}, n),
          MakeTable({{"k", Int64Column(rk)}, {"b", Float64Column(b)}}, n)};
}

// CPU seconds (user + system) of every thread of the process so far. On a shared machine the
// wall time of a parallel run depends on other processes; the CPU time much less.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

void RunJoin(benchmark::State& state, const std::pair<Table, Table>& tables,
             JoinAlgorithm algorithm) {
  JoinOptions options;
  options.type = JoinType::kInner;
  options.left_keys = {"k"};
  options.right_keys = {"k"};
  options.algorithm = algorithm;
  options.threads = static_cast<int>(state.range(1));
  int64_t rows_out = 0;
  const double cpu_before = ProcessCpuSeconds();
  for (auto _ : state) {
    auto result = Join(tables.first, tables.second, options);
    if (!result.ok()) {
      state.SkipWithError(result.status().ToString().c_str());
      return;
    }
    rows_out = result->num_rows();
    benchmark::DoNotOptimize(result->column(0).values_buffer().get());
  }
  state.counters["process_cpu_s"] =
      (ProcessCpuSeconds() - cpu_before) / static_cast<double>(state.iterations());
  state.counters["rows_out"] = static_cast<double>(rows_out);
  state.counters["threads"] = static_cast<double>(options.threads);
}

void BM_JoinFormulaHash(benchmark::State& state) {
  const auto tables = FormulaTables(state.range(0));
  RunJoin(state, tables, JoinAlgorithm::kHash);
}

void BM_JoinFormulaSortMerge(benchmark::State& state) {
  const auto tables = FormulaTables(state.range(0));
  RunJoin(state, tables, JoinAlgorithm::kSortMerge);
}

void BM_JoinUniformHash(benchmark::State& state) {
  const auto tables = UniformTables(state.range(0));
  RunJoin(state, tables, JoinAlgorithm::kHash);
}

void JoinArguments(benchmark::internal::Benchmark* benchmark) {
  for (int64_t rows : {1'000'000, 10'000'000}) {
    for (int64_t threads : {1, 2}) benchmark->Args({rows, threads});
  }
  benchmark->ArgNames({"rows", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_JoinFormulaHash)->Apply(JoinArguments);
BENCHMARK(BM_JoinFormulaSortMerge)->Apply(JoinArguments);
BENCHMARK(BM_JoinUniformHash)->Apply(JoinArguments);

}  // namespace
}  // namespace deeprc::compute
