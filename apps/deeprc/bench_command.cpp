// `deeprc bench table OP --rows N [--threads T]`: times one table operator on data generated in
// memory from fixed formulas, so that the peers' scripts in bench/peers/ build identical data.
// i = 0..N-1, all int64:
//   join:    left (k = i*7919 mod N, a = i), right (k = i*104729 mod N, b = i); inner join on k;
//            checksum = sum of (a + 2b) over the result
//   groupby: (g = i*7919 mod 100000, v = i); sum(v) by g; checksum = sum of (g*31 + sum)
//   sort:    s = i*2654435761 mod 1000000007; ascending; checksum = sum of (position * s),
//            wrapping at 2^64
//   unique:  u = i*7919 mod (N/4); distinct u; checksum = sum of u
//   csv-write: the mixed table below written as CSV; checksum = rows
//   csv-read: reads --path (the mixed table is written there first when the file is missing);
//            checksum = sum of id
// The mixed table (i = 0..N-1): id = i*7919 mod 100000007 (int64), price = (i*104729 mod
// 10000000) / 100 (float64), quantity = (i*31 mod 20000) - 10000 (int64), name = W[i mod 14] + "_"
// + (i*13 mod 1000) (string), day = 1970-01-01 + (i*7 mod 20000) days (date32), note =
// W[i*5 mod 14] + ", " + (i mod 100) when i mod 4 = 0 (quoted in the file, as it holds a comma),
// else W[i*5 mod 14] + " " + (i mod 100) (string), ratio = null when i mod 10 = 0, else
// (i*17 mod 1000000) / 7 (float64); W = alpha bravo charlie delta echo foxtrot golf hotel india
// juliett kilo lima mike november. About 70 bytes a row: 15M rows make 1 GB.
// One JSON line per operator: the median of --repeat runs (seconds) and the first, cold run
// (first_seconds); peak_rss_mb is the process's peak resident memory (run one operator per
// process to compare peaks).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "bench_tasks.h"
#include "deeprc/command_registry.h"
#include "deeprc/compute/group_by.h"
#include "deeprc/compute/join.h"
#include "deeprc/compute/set_ops.h"
#include "deeprc/compute/sort.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/table/builder.h"
#include "deeprc/table/csv.h"

namespace deeprc::app {
namespace {

template <typename T, typename F>
Column GenerateColumn(DataType type, int64_t n, int threads, F value) {
  auto buffer = Buffer::Allocate(n * static_cast<int64_t>(sizeof(T))).ValueOrDie();
  T* out = buffer->mutable_data_as<T>();
  ParallelRanges(n, threads * 4, threads, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = value(i);
  });
  return Column::Make(std::move(type), n, std::move(buffer), nullptr, 0);
}

Column Int64s(int64_t n, int threads, const std::function<int64_t(int64_t)>& value) {
  return GenerateColumn<int64_t>(DataType::Int64(), n, threads, value);
}

Table MakeTable(std::vector<Field> fields, std::vector<Column> columns) {
  return Table::Make(Schema(std::move(fields)), std::move(columns)).ValueOrDie();
}

constexpr const char* kWords[] = {"alpha", "bravo",  "charlie", "delta", "echo",
                                  "foxtrot", "golf", "hotel",   "india", "juliett",
                                  "kilo",  "lima",   "mike",    "november"};

template <typename F>
Column GenerateStrings(int64_t n, F text) {
  StringBuilder builder;
  (void)builder.Reserve(n, n * 16);
  char buffer[64];
  for (int64_t i = 0; i < n; ++i) {
    const auto end = text(i, buffer);
    (void)builder.Append(std::string_view(buffer, end - buffer));
  }
  return builder.Finish().ValueOrDie();
}

Table MixedTable(int64_t n, int threads) {
  Column id = Int64s(n, threads, [](int64_t i) { return i * 7919 % 100000007; });
  Column price = GenerateColumn<double>(DataType::Float64(), n, threads, [](int64_t i) {
    return static_cast<double>(i * 104729 % 10000000) / 100;
  });
  Column quantity = Int64s(n, threads, [](int64_t i) { return i * 31 % 20000 - 10000; });
  Column name = GenerateStrings(n, [](int64_t i, char* out) {
    return fmt::format_to(out, "{}_{}", kWords[i % 14], i * 13 % 1000);
  });
  Column day = GenerateColumn<int32_t>(DataType::Date32(), n, threads,
                                       [](int64_t i) { return static_cast<int32_t>(i * 7 % 20000); });
  Column note = GenerateStrings(n, [](int64_t i, char* out) {
    return i % 4 == 0 ? fmt::format_to(out, "{}, {}", kWords[i * 5 % 14], i % 100)
                      : fmt::format_to(out, "{} {}", kWords[i * 5 % 14], i % 100);
  });
  NumberBuilder<double> ratios(DataType::Float64());
  (void)ratios.Reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    if (i % 10 == 0) {
      ratios.UnsafeAppendNull();
    } else {
      ratios.UnsafeAppend(static_cast<double>(i * 17 % 1000000) / 7);
    }
  }
  Column ratio = ratios.Finish().ValueOrDie();
  return MakeTable({{"id", DataType::Int64()},
                    {"price", DataType::Float64()},
                    {"quantity", DataType::Int64()},
                    {"name", DataType::String()},
                    {"day", DataType::Date32()},
                    {"note", DataType::String()},
                    {"ratio", DataType::Float64()}},
                   {id, price, quantity, name, day, note, ratio});
}

uint64_t SumInt64(const Column& column) {
  uint64_t sum = 0;
  const auto* values = column.Values<int64_t>();
  for (int64_t i = 0; i < column.length(); ++i) sum += static_cast<uint64_t>(values[i]);
  return sum;
}

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// One operator: prepared data, then a timed run that returns the checksum.
struct Workload {
  std::function<Result<uint64_t>()> run;
};

Result<Workload> Prepare(const std::string& op, int64_t n, int threads, const std::string& path) {
  if (op == "join") {
    auto left = std::make_shared<Table>(
        MakeTable({{"k", DataType::Int64()}, {"a", DataType::Int64()}},
                  {Int64s(n, threads, [n](int64_t i) { return i * 7919 % n; }),
                   Int64s(n, threads, [](int64_t i) { return i; })}));
    auto right = std::make_shared<Table>(
        MakeTable({{"k", DataType::Int64()}, {"b", DataType::Int64()}},
                  {Int64s(n, threads, [n](int64_t i) { return i * 104729 % n; }),
                   Int64s(n, threads, [](int64_t i) { return i; })}));
    return Workload{[=]() -> Result<uint64_t> {
      compute::JoinOptions options;
      options.left_keys = options.right_keys = {"k"};
      options.threads = threads;
      DEEPRC_ASSIGN_OR_RAISE(Table out, compute::Join(*left, *right, options));
      return SumInt64(out.GetColumn("a").ValueOrDie()) +
             2 * SumInt64(out.GetColumn("b").ValueOrDie());
    }};
  }
  if (op == "groupby") {
    auto table = std::make_shared<Table>(
        MakeTable({{"g", DataType::Int64()}, {"v", DataType::Int64()}},
                  {Int64s(n, threads, [](int64_t i) { return i * 7919 % 100000; }),
                   Int64s(n, threads, [](int64_t i) { return i; })}));
    return Workload{[=]() -> Result<uint64_t> {
      compute::GroupByOptions options;
      options.keys = {"g"};
      compute::Aggregate sum;
      sum.column = "v";
      sum.kind = compute::AggregateKind::kSum;
      options.aggregates = {sum};
      options.threads = threads;
      DEEPRC_ASSIGN_OR_RAISE(Table out, compute::GroupBy(*table, options));
      return SumInt64(out.column(0)) * 31 + SumInt64(out.column(1));
    }};
  }
  if (op == "sort") {
    auto table = std::make_shared<Table>(
        MakeTable({{"s", DataType::Int64()}},
                  {Int64s(n, threads, [](int64_t i) { return i * 2654435761 % 1000000007; })}));
    return Workload{[=]() -> Result<uint64_t> {
      compute::SortOptions options;
      options.keys = {{"s"}};
      options.threads = threads;
      DEEPRC_ASSIGN_OR_RAISE(Table out, compute::Sort(*table, options));
      const auto* s = out.column(0).Values<int64_t>();
      uint64_t sum = 0;
      for (int64_t i = 0; i < out.num_rows(); ++i) {
        sum += static_cast<uint64_t>(i) * static_cast<uint64_t>(s[i]);
      }
      return sum;
    }};
  }
  if (op == "unique") {
    const int64_t distinct = std::max<int64_t>(1, n / 4);
    auto table = std::make_shared<Table>(
        MakeTable({{"u", DataType::Int64()}},
                  {Int64s(n, threads, [distinct](int64_t i) { return i * 7919 % distinct; })}));
    return Workload{[=]() -> Result<uint64_t> {
      compute::UniqueOptions options;
      options.threads = threads;
      DEEPRC_ASSIGN_OR_RAISE(Table out, compute::Unique(*table, options));
      return SumInt64(out.column(0));
    }};
  }
  if (op == "csv-write") {
    auto table = std::make_shared<Table>(MixedTable(n, threads));
    const std::string out = path.empty() ? "/tmp/deeprc_bench_write.csv" : path;
    return Workload{[=]() -> Result<uint64_t> {
      csv::WriteOptions options;
      options.threads = threads;
      DEEPRC_RETURN_NOT_OK(csv::WriteCsv(*table, out, options));
      return static_cast<uint64_t>(table->num_rows());
    }};
  }
  if (op == "csv-read") {
    const std::string in = path.empty() ? fmt::format("/tmp/deeprc_bench_{}.csv", n) : path;
    if (!std::filesystem::exists(in)) {
      csv::WriteOptions options;
      options.threads = threads;
      DEEPRC_RETURN_NOT_OK(csv::WriteCsv(MixedTable(n, threads), in, options));
    }
    return Workload{[=]() -> Result<uint64_t> {
      csv::ReadOptions options;
      options.threads = threads;
      DEEPRC_ASSIGN_OR_RAISE(Table table, csv::ReadCsv(in, options));
      DEEPRC_ASSIGN_OR_RAISE(Column id, table.GetColumn("id"));
      if (id.type().id != TypeId::kInt64) {
        return Status::Invalid("csv-read: column 'id' of {} is {}, not int64", in,
                               id.type().ToString());
      }
      return SumInt64(id);
    }};
  }
  return Status::Invalid(
      "bench table: unknown operator '{}' (join, groupby, sort, unique, "
      "csv-read, csv-write)",
      op);
}

int RunBenchTable(const std::vector<std::string>& ops, int64_t rows, int threads, int repeat,
                  const std::string& path) {
  if (threads <= 0) threads = DefaultThreadCount();
  for (const auto& op : ops) {
    auto workload = Prepare(op, rows, threads, path);
    if (!workload.ok()) {
      std::fprintf(stderr, "deeprc bench: %s\n", workload.status().ToString().c_str());
      return workload.status().IsUserError() ? kExitUsage : kExitFailure;
    }
    std::vector<double> seconds;
    uint64_t checksum = 0;
    for (int r = 0; r < repeat; ++r) {
      const auto start = std::chrono::steady_clock::now();
      auto result = workload->run();
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      if (!result.ok()) {
        std::fprintf(stderr, "deeprc bench: %s: %s\n", op.c_str(),
                     result.status().ToString().c_str());
        return kExitFailure;
      }
      checksum = *result;
      seconds.push_back(elapsed.count());
    }
    const double first = seconds.front();
    std::sort(seconds.begin(), seconds.end());
    std::printf(
        "{\"system\":\"deeprc\",\"op\":\"%s\",\"rows\":%lld,\"threads\":%d,\"seconds\":%.4f,"
        "\"first_seconds\":%.4f,\"peak_rss_mb\":%.1f,\"checksum\":%llu}\n",
        op.c_str(), static_cast<long long>(rows), threads, seconds[seconds.size() / 2], first,
        PeakRssMb(), static_cast<unsigned long long>(checksum));
    std::fflush(stdout);
  }
  return kExitOk;
}

int RunBenchCommand(int argc, char** argv) {
  CLI::App app{"Benchmarks that print one JSON line per measurement", "deeprc bench"};
  app.require_subcommand(1);
  auto* table = app.add_subcommand("table", "Time table operators on generated data");
  std::vector<std::string> ops;
  int64_t rows = 10'000'000;
  int threads = 0;
  int repeat = 3;
  std::string path;
  table->add_option("op", ops, "join, groupby, sort, unique, csv-read, csv-write (several allowed)")
      ->required();
  table->add_option("--rows", rows, "Rows N (join: on each side)")->check(CLI::PositiveNumber);
  table->add_option("--threads", threads, "Threads (0: DEEPRC_THREADS or all cores)")
      ->check(CLI::NonNegativeNumber);
  table->add_option("--repeat", repeat, "Timed runs; the median is printed")
      ->check(CLI::PositiveNumber);
  table->add_option("--path", path,
                    "csv-read: the file to read (written first when missing); csv-write: where");
  BenchTasksCommand tasks;
  AddBenchTasksCommand(app, &tasks);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? kExitOk : kExitUsage;
  }
  if (tasks.subcommand->parsed()) return RunBenchTasks(tasks);
  return RunBenchTable(ops, rows, threads, repeat, path);
}

const bool kRegistered = RegisterCommand(
    {"bench",
     "Benchmarks (deeprc bench table OP --rows N --threads T | deeprc bench tasks --count N)",
     RunBenchCommand});

}  // namespace
}  // namespace deeprc::app
