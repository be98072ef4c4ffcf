// ReadCsv throughput on a ~200 MB file of mixed types (int64, float64, string, date), with 1 and 2
// threads; bytes/s is the file size over the wall time of one read. The file is generated once in
// /tmp (DEEPRC_CSV_BENCH_FILE overrides the path, DEEPRC_CSV_BENCH_MB the size; an existing file
// at least that large is reused).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <benchmark/benchmark.h>
#include <fmt/core.h>

#include "deeprc/table/csv.h"
#include "deeprc/table/temporal.h"

namespace deeprc {
namespace {

int64_t TargetBytes() {
  const char* megabytes = std::getenv("DEEPRC_CSV_BENCH_MB");
  return (megabytes != nullptr ? std::atoll(megabytes) : 200) << 20;
}

std::string BenchFile() {
  if (const char* path = std::getenv("DEEPRC_CSV_BENCH_FILE")) return path;
  return "/tmp/deeprc_csv_bench_mixed.csv";
}

// Columns: id int64, price float64, quantity int64, name string, day date32, note string
// (quoted, sometimes with a comma), ratio float64 with some nulls.
const std::string& EnsureFile() {
  static const std::string path = [] {
    const std::string file = BenchFile();
    if (std::filesystem::exists(file) &&
        std::filesystem::file_size(file) >= static_cast<uintmax_t>(TargetBytes())) {
      return file;
    }
    const std::string temporary = file + ".tmp-" + std::to_string(::getpid());
    std::ofstream out(temporary, std::ios::binary);
    std::mt19937_64 rng(2024);
    const char* names[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
                           "hotel", "india", "juliett", "kilo",  "lima", "mike",    "november"};
    std::string text = "id,price,quantity,name,day,note,ratio\n";
    int64_t written = 0;
    for (int64_t row = 0; written < TargetBytes(); ++row) {
      fmt::format_to(std::back_inserter(text), "{},{},{},{}_{},{},", row * 7919 % 100000007,
                     static_cast<double>(rng() % 10000000) / 100.0,
                     static_cast<int64_t>(rng() % 20000) - 10000, names[rng() % 14], rng() % 1000,
                     temporal::FormatDate(static_cast<int32_t>(rng() % 20000)));
      if (rng() % 4 == 0) {
        fmt::format_to(std::back_inserter(text), "\"{}, {}\",", names[rng() % 14], rng() % 100);
      } else {
        fmt::format_to(std::back_inserter(text), "{} {},", names[rng() % 14], rng() % 100);
      }
      if (rng() % 10 != 0) {
        fmt::format_to(std::back_inserter(text), "{}", static_cast<double>(rng() % 1000000) / 7);
      }
      text += '\n';
      if (text.size() > (1 << 20)) {
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        written += static_cast<int64_t>(text.size());
        text.clear();
      }
    }
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    std::filesystem::rename(temporary, file);
    return file;
  }();
  return path;
}

void BM_ReadCsvMixed(benchmark::State& state) {
  const std::string& path = EnsureFile();
  const int64_t bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  csv::ReadOptions options;
  options.threads = static_cast<int>(state.range(0));
  int64_t rows = 0;
  for (auto _ : state) {
    auto table = csv::ReadCsv(path, options);
    if (!table.ok()) {
      state.SkipWithError(table.status().ToString().c_str());
      return;
    }
    rows = table->num_rows();
    benchmark::DoNotOptimize(rows);
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["rows"] = static_cast<double>(rows);
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(bytes) / 1e6,
                                              benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ReadCsvMixed)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_WriteCsvMixed(benchmark::State& state) {
  const std::string& path = EnsureFile();
  auto table = csv::ReadCsv(path);
  if (!table.ok()) {
    state.SkipWithError(table.status().ToString().c_str());
    return;
  }
  const std::string out = path + ".written.csv";
  csv::WriteOptions options;
  options.threads = static_cast<int>(state.range(0));
  for (auto _ : state) {
    auto status = csv::WriteCsv(*table, out, options);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
  }
  const auto bytes = static_cast<double>(std::filesystem::file_size(out));
  state.counters["MB/s"] =
      benchmark::Counter(bytes / 1e6, benchmark::Counter::kIsIterationInvariantRate);
  std::filesystem::remove(out);
}
BENCHMARK(BM_WriteCsvMixed)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace deeprc
