// Filter benchmark: 10,000,000 rows (int64 a uniform in [0, 1000), float64 b uniform in [0, 1),
// string s from 100 values, 10% nulls in b), one predicate of each kind.
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "deeprc/compute/filter.h"
#include "deeprc/table/builder.h"

namespace deeprc::compute {
namespace {

const Table& FilterTable() {
  static const Table table = [] {
    constexpr int64_t kRows = 10'000'000;
    NumberBuilder<int64_t> a(DataType::Int64());
    NumberBuilder<double> b(DataType::Float64());
    StringBuilder s;
    std::mt19937_64 rng(1);
    for (int64_t i = 0; i < kRows; ++i) {
      (void)a.Append(static_cast<int64_t>(rng() % 1000));
      if (rng() % 10 == 0) {
        (void)b.AppendNull();
      } else {
        (void)b.Append(static_cast<double>(rng() % 1000000) / 1e6);
      }
      (void)s.Append("value_" + std::to_string(rng() % 100));
    }
    return Table::Make(Schema({{"a", DataType::Int64()},
                               {"b", DataType::Float64()},
                               {"s", DataType::String()}}),
                       {a.Finish().ValueOrDie(), b.Finish().ValueOrDie(), s.Finish().ValueOrDie()})
        .ValueOrDie();
  }();
  return table;
}

const char* const kPredicates[] = {
    "a < 100",
    "a < 500 and b > 0.25",
    "(a < 100 or b is null) and not s in ('value_1', 'value_2')",
    "s >= 'value_5'",
};

void BM_Evaluate(benchmark::State& state) {
  const Table& table = FilterTable();
  auto predicate = Predicate::Parse(kPredicates[state.range(0)]).ValueOrDie();
  for (auto _ : state) {
    auto mask = predicate.Evaluate(table, static_cast<int>(state.range(1)));
    benchmark::DoNotOptimize(mask);
  }
  state.SetLabel(kPredicates[state.range(0)]);
}
BENCHMARK(BM_Evaluate)
    ->ArgNames({"predicate", "threads"})
    ->ArgsProduct({{0, 1, 2, 3}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_Filter(benchmark::State& state) {
  const Table& table = FilterTable();
  for (auto _ : state) {
    auto filtered = Filter(table, kPredicates[state.range(0)], static_cast<int>(state.range(1)));
    benchmark::DoNotOptimize(filtered);
  }
  state.SetLabel(kPredicates[state.range(0)]);
}
BENCHMARK(BM_Filter)
    ->ArgNames({"predicate", "threads"})
    ->Args({1, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace deeprc::compute
