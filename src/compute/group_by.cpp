#include "deeprc/compute/group_by.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <new>
#include <unordered_set>

#include "compute/grouping.h"
#include "deeprc/compute/hash.h"
#include "deeprc/compute/selection.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/table/builder.h"

namespace deeprc::compute {
namespace {

using internal::kSkipGroup;

bool IsHolistic(AggregateKind kind) {
  return kind == AggregateKind::kNunique || kind == AggregateKind::kMedian ||
         kind == AggregateKind::kQuantile;
}

// ---------------------------------------------------------------------------------------------
// Reading values: one reader type per physical representation, so that update loops are
// instantiated per type and contain no per-row dispatch.

template <typename T>
struct NumberReader {
  using Value = T;
  const T* values;
  explicit NumberReader(const Column& column) : values(column.Values<T>()) {}
  T operator()(int64_t i) const { return values[i]; }
};

struct BoolReader {
  using Value = bool;
  const uint8_t* bits;
  int64_t offset;
  explicit BoolReader(const Column& column) : bits(column.bool_bits()), offset(column.offset()) {}
  bool operator()(int64_t i) const { return bitmap::GetBit(bits, offset + i); }
};

template <typename Tag>
struct ReaderFor {
  using type = NumberReader<typename Tag::CType>;
};
template <>
struct ReaderFor<BoolTag> {
  using type = BoolReader;
};

// Calls f(group, row) for the rows of [begin, end) that belong to a group and hold a value;
// marks seen[group] when the column has nulls (otherwise every group has a value).
template <bool kNulls, bool kSkip, typename F>
inline void ForEachValueImpl(const Column& column, int64_t begin, int64_t end,
                             const uint32_t* groups, uint8_t* seen, F&& f) {
  const uint8_t* validity = column.validity_bits();
  const int64_t offset = column.offset();
  for (int64_t i = begin; i < end; ++i) {
    const uint32_t g = groups[i - begin];
    if constexpr (kSkip) {
      if (g == kSkipGroup) continue;
    }
    if constexpr (kNulls) {
      if (!bitmap::GetBit(validity, offset + i)) continue;
      if (seen != nullptr) seen[g] = 1;
    }
    f(g, i);
  }
}

template <typename F>
inline void ForEachValue(const Column& column, bool may_skip, int64_t begin, int64_t end,
                         const uint32_t* groups, uint8_t* seen, F&& f) {
  if (column.has_nulls()) {
    if (may_skip) {
      ForEachValueImpl<true, true>(column, begin, end, groups, seen, f);
    } else {
      ForEachValueImpl<true, false>(column, begin, end, groups, seen, f);
    }
  } else {
    if (may_skip) {
      ForEachValueImpl<false, true>(column, begin, end, groups, seen, f);
    } else {
      ForEachValueImpl<false, false>(column, begin, end, groups, seen, f);
    }
  }
}

template <typename T>
bool IsNaN(T value) {
  if constexpr (std::is_floating_point_v<T>) {
    return value != value;
  } else {
    return false;
  }
}

// Orders NaN above every number (as DuckDB and Polars do), so min skips NaN unless all are NaN
// and max is NaN when any is.
template <typename T>
bool LessNaNLast(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (b != b) return a == a;
  }
  return a < b;
}

// ---------------------------------------------------------------------------------------------
// Output columns.

template <typename T, typename ValueOf, typename ValidOf>
Result<Column> BuildNumbers(const DataType& type, int64_t n, ValueOf&& value_of,
                            ValidOf&& valid_of) {
  NumberBuilder<T> builder(type);
  DEEPRC_RETURN_NOT_OK(builder.Reserve(n));
  for (int64_t g = 0; g < n; ++g) {
    if (valid_of(g)) {
      builder.UnsafeAppend(value_of(g));
    } else {
      builder.UnsafeAppendNull();
    }
  }
  return builder.Finish();
}

// ---------------------------------------------------------------------------------------------
// Decomposable aggregate states: one per aggregate and per row range, merged at the end.

class AggregateState {
 public:
  virtual ~AggregateState() = default;
  // Rows [begin, end) with their group ids; `groups` is the group count so far.
  virtual void Update(int64_t begin, int64_t end, const uint32_t* group_ids, int64_t groups) = 0;
  // Folds in the state of a later row range; map[g] is the id here of other's group g; `groups`
  // is the group count here after the merge.
  virtual void Merge(const AggregateState& other, const uint32_t* map, int64_t other_groups,
                     int64_t groups) = 0;
  virtual Result<Column> Finish(int64_t groups) = 0;
  virtual Status status() const { return Status::OK(); }
};

// What every state knows: the value column, whether group ids may be kSkipGroup, and whether
// groups can lack a value (then `seen` is kept).
struct StateBase : AggregateState {
  StateBase(Column column_in, bool may_skip_in)
      : column(std::move(column_in)),
        may_skip(may_skip_in),
        // An empty column (a whole-table aggregate of no rows) leaves its one group unseen.
        track_seen(column.has_nulls() || column.length() == 0) {}

  void GrowSeen(int64_t groups) {
    if (track_seen && static_cast<int64_t>(seen.size()) < groups) seen.resize(groups, 0);
  }
  uint8_t* seen_data() { return track_seen ? seen.data() : nullptr; }
  bool Seen(int64_t g) const { return !track_seen || seen[g] != 0; }
  void MergeSeen(const StateBase& other, const uint32_t* map, int64_t other_groups) {
    if (!track_seen) return;
    for (int64_t g = 0; g < other_groups; ++g) seen[map[g]] |= other.seen[g];
  }

  Column column;
  bool may_skip;
  bool track_seen;
  std::vector<uint8_t> seen;
};

// Integer sums in int64 (uint64 for unsigned); a 64-bit input is checked for overflow, which is
// reported as an error rather than wrapping silently.
template <typename Reader, typename Acc>
class IntegerSumState final : public StateBase {
 public:
  IntegerSumState(Column column, bool may_skip, std::string name)
      : StateBase(std::move(column), may_skip), name_(std::move(name)) {}

  void Update(int64_t begin, int64_t end, const uint32_t* group_ids, int64_t groups) override {
    Grow(groups);
    Reader read(column);
    Acc* sums = sums_.data();
    bool overflow = false;
    ForEachValue(column, may_skip, begin, end, group_ids, seen_data(), [&](uint32_t g, int64_t i) {
      overflow |= __builtin_add_overflow(sums[g], static_cast<Acc>(read(i)), &sums[g]);
    });
    overflow_ |= overflow;
  }

  void Merge(const AggregateState& other_base, const uint32_t* map, int64_t other_groups,
             int64_t groups) override {
    const auto& other = static_cast<const IntegerSumState&>(other_base);
    Grow(groups);
    for (int64_t g = 0; g < other_groups; ++g) {
      overflow_ |= __builtin_add_overflow(sums_[map[g]], other.sums_[g], &sums_[map[g]]);
    }
    MergeSeen(other, map, other_groups);
    overflow_ |= other.overflow_;
  }

  Result<Column> Finish(int64_t groups) override {
    Grow(groups);
    const DataType type = std::is_signed_v<Acc> ? DataType::Int64() : DataType::UInt64();
    return BuildNumbers<Acc>(
        type, groups, [&](int64_t g) { return sums_[g]; }, [&](int64_t g) { return Seen(g); });
  }

  Status status() const override {
    if (!overflow_) return Status::OK();
    return Status::Invalid(
        "sum of column '{}' overflows {} in at least one group (cast the column "
        "to float64 to sum it approximately)",
        column_name(), std::is_signed_v<Acc> ? "int64" : "uint64");
  }

 private:
  const std::string& column_name() const { return name_; }
  void Grow(int64_t groups) {
    if (static_cast<int64_t>(sums_.size()) < groups) sums_.resize(groups, 0);
    GrowSeen(groups);
  }

  std::string name_;
  std::vector<Acc> sums_;
  bool overflow_ = false;
};

// Floating sums (and the sum part of means) with Neumaier's compensation, as pandas sums.
struct CompensatedSum {
  double sum = 0;
  double compensation = 0;
  void Add(double x) {
    const double t = sum + x;
    // Past an infinity (or NaN) the correction term would only turn inf into NaN.
    if (std::isfinite(t)) {
      if (std::fabs(sum) >= std::fabs(x)) {
        compensation += (sum - t) + x;
      } else {
        compensation += (x - t) + sum;
      }
    }
    sum = t;
  }
  void Add(const CompensatedSum& other) {
    Add(other.sum);
    compensation += other.compensation;
  }
  double Value() const { return std::isfinite(sum) ? sum + compensation : sum; }
};

template <typename Reader>
class FloatSumState final : public StateBase {
 public:
  using StateBase::StateBase;

  void Update(int64_t begin, int64_t end, const uint32_t* group_ids, int64_t groups) override {
    Grow(groups);
    Reader read(column);
    CompensatedSum* sums = sums_.data();
    ForEachValue(column, may_skip, begin, end, group_ids, seen_data(),
                 [&](uint32_t g, int64_t i) { sums[g].Add(static_cast<double>(read(i))); });
  }
  void Merge(const AggregateState& other_base, const uint32_t* map, int64_t other_groups,
             int64_t groups) override {
    const auto& other = static_cast<const FloatSumState&>(other_base);
    Grow(groups);
    for (int64_t g = 0; g < other_groups; ++g) sums_[map[g]].Add(other.sums_[g]);
    MergeSeen(other, map, other_groups);
  }
  Result<Column> Finish(int64_t groups) override {
    Grow(groups);
    return BuildNumbers<double>(
        DataType::Float64(), groups, [&](int64_t g) { return sums_[g].Value(); },
        [&](int64_t g) { return Seen(g); });
  }

 private:
  void Grow(int64_t groups) {
    if (static_cast<int64_t>(sums_.size()) < groups) sums_.resize(groups);
    GrowSeen(groups);
  }
  std::vector<CompensatedSum> sums_;
};

class CountState final : public StateBase {
 public:
  using StateBase::StateBase;

  void Update(int64_t begin, int64_t end, const uint32_t* group_ids, int64_t groups) override {
    Grow(groups);
    int64_t* counts = counts_.data();
    ForEachValue(column, may_skip, begin, end, group_ids, nullptr,
                 [&](uint32_t g, int64_t) { ++counts[g]; });
  }
  void Merge(const AggregateState& other_base, const uint32_t* map, int64_t other_groups,
             int64_t groups) override {
    const auto& other = static_cast<const CountState&>(other_base);
    Grow(groups);
    for (int64_t g = 0; g < other_groups; ++g) counts_[map[g]] += other.counts_[g];
  }
  Result<Column> Finish(int64_t groups) override {
    Grow(groups);
    return BuildNumbers<int64_t>(
        DataType::Int64(), groups, [&](int64_t g) { return counts_[g]; },
        [](int64_t) { return true; });
  }

 private:
  void Grow(int64_t groups) {
    if (static_cast<int64_t>(counts_.size()) < groups) counts_.resize(groups, 0);
  }
  std::vector<int64_t> counts_;
};

// min or max of a fixed-width column, kept as values.
template <typename T, bool kMax>
class MinMaxState final : public StateBase {
 public:
  using StateBase::StateBase;

  void Update(int64_t begin, int64_t end, const uint32_t* group_ids, int64_t groups) override {
    Grow(groups);
    const T* values = column.Values<T>();
    T* best = best_.data();
    ForEachValue(column, may_skip, begin, end, group_ids, seen_data(),
                 [&](uint32_t g, int64_t i) { Fold(best[g], values[i]); });
  }
  void Merge(const AggregateState& other_base, const uint32_t* map, int64_t other_groups,
             int64_t groups) override {
    const auto& other = static_cast<const MinMaxState&>(other_base);
    Grow(groups);
    for (int64_t g = 0; g < other_groups; ++g) Fold(best_[map[g]], other.best_[g]);
    MergeSeen(other, map, other_groups);
  }
  Result<Column> Finish(int64_t groups) override {
    Grow(groups);
    return BuildNumbers<T>(
        column.type(), groups, [&](int64_t g) { return best_[g]; },
        [&](int64_t g) { return Seen(g); });
  }

 private:
  static T Initial() {
    if constexpr (std::is_floating_point_v<T>) {
      return kMax ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::quiet_NaN();
    } else {
      return kMax ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
    }
  }
  static void Fold(T& best, T value) {
    if constexpr (kMax) {
      if (LessNaNLast(best, value)) best = value;
    } else {
      if (LessNaNLast(value, best)) best = value;
    }
  }
  void Grow(int64_t groups) {
    if (static_cast<int64_t>(best_.size()) < groups) best_.resize(groups, Initial());
    GrowSeen(groups);
  }
  std::vector<T> best_;
};

// first, last, and min/max of bool and string columns: the row of the chosen value per group
// (-1: none), gathered with Take at the end.
enum class RowChoice { kFirst, kLast, kMin, kMax };

template <typename Tag, RowChoice kChoice>
class RowChoiceState final : public StateBase {
 public:
  using StateBase::StateBase;

  void Update(int64_t begin, int64_t end, const uint32_t* group_ids, int64_t groups) override {
    Grow(groups);
    int64_t* rows = rows_.data();
    ForEachValue(column, may_skip, begin, end, group_ids, nullptr,
                 [&](uint32_t g, int64_t i) { Fold(rows[g], i); });
  }
  void Merge(const AggregateState& other_base, const uint32_t* map, int64_t other_groups,
             int64_t groups) override {
    const auto& other = static_cast<const RowChoiceState&>(other_base);
    Grow(groups);
    for (int64_t g = 0; g < other_groups; ++g) {
      if (other.rows_[g] >= 0) Fold(rows_[map[g]], other.rows_[g]);
    }
  }
  Result<Column> Finish(int64_t groups) override {
    Grow(groups);
    return Take(column, rows_);
  }

 private:
  // `row` comes after every row already folded into `best` (rows arrive in order).
  void Fold(int64_t& best, int64_t row) const {
    if (best < 0) {
      best = row;
      return;
    }
    if constexpr (kChoice == RowChoice::kLast) {
      best = row;
    } else if constexpr (kChoice == RowChoice::kMin) {
      if (Less(row, best)) best = row;
    } else if constexpr (kChoice == RowChoice::kMax) {
      if (Less(best, row)) best = row;
    }
  }
  bool Less(int64_t a, int64_t b) const {
    if constexpr (std::is_same_v<Tag, StringTag>) {
      return column.GetString(a) < column.GetString(b);
    } else if constexpr (std::is_same_v<Tag, BoolTag>) {
      return !column.GetBool(a) && column.GetBool(b);
    } else {
      using T = typename Tag::CType;
      return LessNaNLast(column.Value<T>(a), column.Value<T>(b));
    }
  }
  void Grow(int64_t groups) {
    if (static_cast<int64_t>(rows_.size()) < groups) rows_.resize(groups, -1);
  }
  std::vector<int64_t> rows_;
};

// mean: integers summed exactly in 128 bits, floats with compensation.
template <typename Reader>
class MeanState final : public StateBase {
  static constexpr bool kFloat = std::is_floating_point_v<typename Reader::Value>;
  using Sum = std::conditional_t<kFloat, CompensatedSum, __int128>;

 public:
  using StateBase::StateBase;

  void Update(int64_t begin, int64_t end, const uint32_t* group_ids, int64_t groups) override {
    Grow(groups);
    Reader read(column);
    Sum* sums = sums_.data();
    int64_t* counts = counts_.data();
    ForEachValue(column, may_skip, begin, end, group_ids, nullptr, [&](uint32_t g, int64_t i) {
      if constexpr (kFloat) {
        sums[g].Add(static_cast<double>(read(i)));
      } else {
        sums[g] += static_cast<__int128>(read(i));
      }
      ++counts[g];
    });
  }
  void Merge(const AggregateState& other_base, const uint32_t* map, int64_t other_groups,
             int64_t groups) override {
    const auto& other = static_cast<const MeanState&>(other_base);
    Grow(groups);
    for (int64_t g = 0; g < other_groups; ++g) {
      if constexpr (kFloat) {
        sums_[map[g]].Add(other.sums_[g]);
      } else {
        sums_[map[g]] += other.sums_[g];
      }
      counts_[map[g]] += other.counts_[g];
    }
  }
  Result<Column> Finish(int64_t groups) override {
    Grow(groups);
    return BuildNumbers<double>(
        DataType::Float64(), groups,
        [&](int64_t g) {
          if constexpr (kFloat) {
            return sums_[g].Value() / static_cast<double>(counts_[g]);
          } else {
            return static_cast<double>(sums_[g]) / static_cast<double>(counts_[g]);
          }
        },
        [&](int64_t g) { return counts_[g] > 0; });
  }

 private:
  void Grow(int64_t groups) {
    if (static_cast<int64_t>(sums_.size()) < groups) {
      sums_.resize(groups, Sum{});
      counts_.resize(groups, 0);
    }
  }
  std::vector<Sum> sums_;
  std::vector<int64_t> counts_;
};

// var and std: Welford's running mean and sum of squared deviations, ranges merged with Chan's
// formula.
struct Moments {
  int64_t count = 0;
  double mean = 0;
  double m2 = 0;
};

template <typename Reader>
class VarianceState final : public StateBase {
 public:
  VarianceState(Column column, bool may_skip, int ddof, bool std)
      : StateBase(std::move(column), may_skip), ddof_(ddof), std_(std) {}

  void Update(int64_t begin, int64_t end, const uint32_t* group_ids, int64_t groups) override {
    Grow(groups);
    Reader read(column);
    Moments* moments = moments_.data();
    ForEachValue(column, may_skip, begin, end, group_ids, nullptr, [&](uint32_t g, int64_t i) {
      Moments& m = moments[g];
      const double x = static_cast<double>(read(i));
      ++m.count;
      const double delta = x - m.mean;
      m.mean += delta / static_cast<double>(m.count);
      m.m2 += delta * (x - m.mean);
    });
  }
  void Merge(const AggregateState& other_base, const uint32_t* map, int64_t other_groups,
             int64_t groups) override {
    const auto& other = static_cast<const VarianceState&>(other_base);
    Grow(groups);
    for (int64_t g = 0; g < other_groups; ++g) {
      const Moments& b = other.moments_[g];
      if (b.count == 0) continue;
      Moments& a = moments_[map[g]];
      if (a.count == 0) {
        a = b;
        continue;
      }
      const double na = static_cast<double>(a.count);
      const double nb = static_cast<double>(b.count);
      const double n = na + nb;
      const double delta = b.mean - a.mean;
      a.mean += delta * nb / n;
      a.m2 += b.m2 + delta * delta * na * nb / n;
      a.count += b.count;
    }
  }
  Result<Column> Finish(int64_t groups) override {
    Grow(groups);
    return BuildNumbers<double>(
        DataType::Float64(), groups,
        [&](int64_t g) {
          const Moments& m = moments_[g];
          const double var = m.m2 / static_cast<double>(m.count - ddof_);
          return std_ ? std::sqrt(var) : var;
        },
        [&](int64_t g) { return moments_[g].count > ddof_; });
  }

 private:
  void Grow(int64_t groups) {
    if (static_cast<int64_t>(moments_.size()) < groups) moments_.resize(groups);
  }
  int ddof_;
  bool std_;
  std::vector<Moments> moments_;
};

// ---------------------------------------------------------------------------------------------
// Checking aggregates against the table, and making their states.

bool IsSummable(TypeId id) { return IsNumeric(id) || id == TypeId::kBool; }

struct ResolvedAggregate {
  Aggregate aggregate;
  int column_index = -1;
  std::string output_name;
};

std::string DefaultOutputName(const Aggregate& aggregate) {
  if (aggregate.kind == AggregateKind::kQuantile) {
    return fmt::format("{}_quantile_{}", aggregate.column, aggregate.quantile);
  }
  return fmt::format("{}_{}", aggregate.column, AggregateKindName(aggregate.kind));
}

Result<std::vector<ResolvedAggregate>> Resolve(const Table& table,
                                               const std::vector<Aggregate>& aggregates,
                                               const std::vector<std::string>& taken_names) {
  std::vector<ResolvedAggregate> resolved;
  std::vector<std::string> names = taken_names;
  for (const Aggregate& aggregate : aggregates) {
    ResolvedAggregate r;
    r.aggregate = aggregate;
    auto index = table.schema().GetFieldIndex(aggregate.column);
    if (!index.ok()) {
      return index.status().WithContext(fmt::format(
          "aggregate {} of column '{}'", AggregateKindName(aggregate.kind), aggregate.column));
    }
    r.column_index = *index;
    const DataType& type = table.schema().field(r.column_index).type;
    switch (aggregate.kind) {
      case AggregateKind::kSum:
      case AggregateKind::kMean:
      case AggregateKind::kVar:
      case AggregateKind::kStd:
      case AggregateKind::kMedian:
      case AggregateKind::kQuantile:
        if (!IsSummable(type.id)) {
          return Status::TypeError(
              "aggregate {} needs a numeric or bool column, but column '{}' is {}",
              AggregateKindName(aggregate.kind), aggregate.column, type.ToString());
        }
        break;
      default:
        break;
    }
    if (aggregate.kind == AggregateKind::kQuantile &&
        !(aggregate.quantile >= 0 && aggregate.quantile <= 1)) {
      return Status::Invalid("quantile {} of column '{}' is not in [0, 1]", aggregate.quantile,
                             aggregate.column);
    }
    if ((aggregate.kind == AggregateKind::kVar || aggregate.kind == AggregateKind::kStd) &&
        aggregate.ddof < 0) {
      return Status::Invalid("ddof {} of {} of column '{}' is negative", aggregate.ddof,
                             AggregateKindName(aggregate.kind), aggregate.column);
    }
    r.output_name =
        aggregate.output_name.empty() ? DefaultOutputName(aggregate) : aggregate.output_name;
    if (std::find(names.begin(), names.end(), r.output_name) != names.end()) {
      return Status::Invalid(
          "output column '{}' would appear twice (give aggregates distinct names with "
          "'=NAME')",
          r.output_name);
    }
    names.push_back(r.output_name);
    resolved.push_back(std::move(r));
  }
  return resolved;
}

std::unique_ptr<AggregateState> MakeState(const ResolvedAggregate& r, const Column& column,
                                          bool may_skip) {
  const Aggregate& a = r.aggregate;
  return VisitType(column.type_id(), [&]<typename Tag>(Tag) -> std::unique_ptr<AggregateState> {
    constexpr bool kNumber = kIsNumberTag<Tag>;
    constexpr bool kBool = std::is_same_v<Tag, BoolTag>;
    switch (a.kind) {
      case AggregateKind::kCount:
        return std::make_unique<CountState>(column, may_skip);
      case AggregateKind::kFirst:
        return std::make_unique<RowChoiceState<Tag, RowChoice::kFirst>>(column, may_skip);
      case AggregateKind::kLast:
        return std::make_unique<RowChoiceState<Tag, RowChoice::kLast>>(column, may_skip);
      case AggregateKind::kMin:
        if constexpr (kNumber) {
          return std::make_unique<MinMaxState<typename Tag::CType, false>>(column, may_skip);
        } else {
          return std::make_unique<RowChoiceState<Tag, RowChoice::kMin>>(column, may_skip);
        }
      case AggregateKind::kMax:
        if constexpr (kNumber) {
          return std::make_unique<MinMaxState<typename Tag::CType, true>>(column, may_skip);
        } else {
          return std::make_unique<RowChoiceState<Tag, RowChoice::kMax>>(column, may_skip);
        }
      default:
        break;
    }
    if constexpr (kNumber || kBool) {
      using Reader = typename ReaderFor<Tag>::type;
      using Value = typename Reader::Value;
      switch (a.kind) {
        case AggregateKind::kSum:
          if constexpr (std::is_floating_point_v<Value>) {
            return std::make_unique<FloatSumState<Reader>>(column, may_skip);
          } else if constexpr (std::is_unsigned_v<Value> && !kBool) {
            return std::make_unique<IntegerSumState<Reader, uint64_t>>(column, may_skip, a.column);
          } else {
            return std::make_unique<IntegerSumState<Reader, int64_t>>(column, may_skip, a.column);
          }
        case AggregateKind::kMean:
          return std::make_unique<MeanState<Reader>>(column, may_skip);
        case AggregateKind::kVar:
        case AggregateKind::kStd:
          return std::make_unique<VarianceState<Reader>>(column, may_skip, a.ddof,
                                                         a.kind == AggregateKind::kStd);
        default:
          break;
      }
    }
    return nullptr;  // holistic aggregates and types Resolve rejects never get here
  });
}

// ---------------------------------------------------------------------------------------------
// Holistic aggregates: the rows of each group that hold a value are gathered (a counting sort by
// group id, stable, so rows stay in input order), then each group is worked on alone.

struct RowsByGroup {
  std::vector<int64_t> offsets;  // groups + 1
  std::vector<uint32_t> rows;
};

RowsByGroup GatherRows(const Column& column, const std::vector<uint32_t>& group_ids,
                       int64_t groups) {
  RowsByGroup result;
  result.offsets.assign(static_cast<size_t>(groups + 1), 0);
  const int64_t n = static_cast<int64_t>(group_ids.size());
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t g = group_ids[i];
    if (g != kSkipGroup && column.IsValid(i)) ++result.offsets[g + 1];
  }
  for (int64_t g = 0; g < groups; ++g) result.offsets[g + 1] += result.offsets[g];
  result.rows.resize(static_cast<size_t>(result.offsets[groups]));
  std::vector<int64_t> next(result.offsets.begin(), result.offsets.end() - 1);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t g = group_ids[i];
    if (g != kSkipGroup && column.IsValid(i)) result.rows[next[g]++] = static_cast<uint32_t>(i);
  }
  return result;
}

// Runs body(g) for every group, on chunks of groups spread over the threads.
void ForEachGroup(int64_t groups, int threads, const std::function<void(int64_t, int64_t)>& body) {
  constexpr int64_t kChunk = 1024;
  ParallelFor((groups + kChunk - 1) / kChunk, threads,
              [&](int64_t c) { body(c * kChunk, std::min(groups, (c + 1) * kChunk)); });
}

double QuantileOfSorted(const std::vector<double>& v, double q, bool median) {
  const int64_t n = static_cast<int64_t>(v.size());
  if (median) {
    // pandas' median: the middle value, or the mean of the two middle values.
    if (n % 2 == 1) return v[n / 2];
    return (v[n / 2 - 1] + v[n / 2]) / 2;
  }
  // pandas' linear interpolation (groupby quantile), step for step.
  const double position = q * static_cast<double>(n - 1);
  const auto index = static_cast<int64_t>(position);
  const double fraction = std::fmod(position, 1.0);
  if (fraction == 0.0) return v[index];
  return v[index] + (v[index + 1] - v[index]) * fraction;
}

Result<Column> HolisticAggregate(const ResolvedAggregate& r, const Column& column,
                                 const std::vector<uint32_t>& group_ids, int64_t groups,
                                 int threads) {
  const RowsByGroup by_group = GatherRows(column, group_ids, groups);
  const auto& offsets = by_group.offsets;
  const auto& rows = by_group.rows;
  const Aggregate& a = r.aggregate;
  if (a.kind == AggregateKind::kNunique) {
    std::vector<int64_t> counts(static_cast<size_t>(groups), 0);
    VisitType(column.type_id(), [&]<typename Tag>(Tag) {
      ForEachGroup(groups, threads, [&](int64_t begin, int64_t end) {
        if constexpr (std::is_same_v<Tag, StringTag>) {
          std::vector<std::string_view> values;
          for (int64_t g = begin; g < end; ++g) {
            values.clear();
            for (int64_t k = offsets[g]; k < offsets[g + 1]; ++k) {
              values.push_back(column.GetString(rows[k]));
            }
            std::sort(values.begin(), values.end());
            counts[g] = std::unique(values.begin(), values.end()) - values.begin();
          }
        } else if constexpr (std::is_same_v<Tag, BoolTag>) {
          for (int64_t g = begin; g < end; ++g) {
            bool any_true = false, any_false = false;
            for (int64_t k = offsets[g]; k < offsets[g + 1]; ++k) {
              (column.GetBool(rows[k]) ? any_true : any_false) = true;
            }
            counts[g] = int64_t{any_true} + int64_t{any_false};
          }
        } else {
          using T = typename Tag::CType;
          std::vector<T> values;
          for (int64_t g = begin; g < end; ++g) {
            values.clear();
            for (int64_t k = offsets[g]; k < offsets[g + 1]; ++k) {
              values.push_back(NormalizeKey(column.Value<T>(rows[k])));
            }
            std::sort(values.begin(), values.end(), LessNaNLast<T>);
            counts[g] =
                std::unique(values.begin(), values.end(), KeyValuesEqual<T>) - values.begin();
          }
        }
      });
    });
    return BuildNumbers<int64_t>(
        DataType::Int64(), groups, [&](int64_t g) { return counts[g]; },
        [](int64_t) { return true; });
  }
  // median and quantile, over values as float64.
  std::vector<double> results(static_cast<size_t>(groups), 0);
  const bool median = a.kind == AggregateKind::kMedian;
  VisitType(column.type_id(), [&]<typename Tag>(Tag) {
    if constexpr (kIsNumberTag<Tag> || std::is_same_v<Tag, BoolTag>) {
      ForEachGroup(groups, threads, [&](int64_t begin, int64_t end) {
        std::vector<double> values;
        for (int64_t g = begin; g < end; ++g) {
          if (offsets[g] == offsets[g + 1]) continue;
          values.clear();
          for (int64_t k = offsets[g]; k < offsets[g + 1]; ++k) {
            if constexpr (std::is_same_v<Tag, BoolTag>) {
              values.push_back(column.GetBool(rows[k]) ? 1.0 : 0.0);
            } else {
              values.push_back(static_cast<double>(column.Value<typename Tag::CType>(rows[k])));
            }
          }
          std::sort(values.begin(), values.end(), LessNaNLast<double>);
          results[g] = QuantileOfSorted(values, a.quantile, median);
        }
      });
    }
  });
  return BuildNumbers<double>(
      DataType::Float64(), groups, [&](int64_t g) { return results[g]; },
      [&](int64_t g) { return offsets[g] < offsets[g + 1]; });
}

// ---------------------------------------------------------------------------------------------

// Groups `table` by `keys` (none: one group of every row) and computes the aggregates; returns
// the key columns followed by the aggregate columns.
Result<Table> RunAggregation(const Table& table, const std::vector<int>& keys,
                             const std::vector<ResolvedAggregate>& aggregates, bool drop_null_keys,
                             int threads) {
  if (threads <= 0) threads = DefaultThreadCount();
  DEEPRC_ASSIGN_OR_RAISE(auto probe, internal::MakeGroupMapper(table, keys, drop_null_keys,
                                                               /*allow_dense=*/false));
  const bool may_skip = probe->may_skip();
  probe.reset();

  bool any_holistic = false;
  for (const auto& r : aggregates) any_holistic |= IsHolistic(r.aggregate.kind);

  // One set of states per row range; the number of ranges is decided by GroupRows, so make
  // enough for the thread count.
  const int max_parts = threads;
  std::vector<std::vector<std::unique_ptr<AggregateState>>> states(static_cast<size_t>(max_parts));
  try {
    for (auto& part : states) {
      for (const auto& r : aggregates) {
        if (IsHolistic(r.aggregate.kind)) {
          part.push_back(nullptr);
        } else {
          part.push_back(MakeState(r, table.column(r.column_index), may_skip));
        }
      }
    }
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory("out of memory setting up aggregates");
  }

  Result<internal::Grouping> grouped = [&]() -> Result<internal::Grouping> {
    try {
      return internal::GroupRows(
          table, keys, drop_null_keys, threads, max_parts, any_holistic,
          [&](int part, int64_t begin, int64_t end, const uint32_t* ids, int64_t groups) {
            for (auto& state : states[part]) {
              if (state) state->Update(begin, end, ids, groups);
            }
          });
    } catch (const std::bad_alloc&) {
      return Status::OutOfMemory("out of memory while aggregating {} rows", table.num_rows());
    }
  }();
  DEEPRC_RETURN_NOT_OK(grouped.status());
  internal::Grouping grouping = grouped.MoveValueUnsafe();
  const int64_t groups = grouping.mapper->num_groups();

  std::vector<Field> fields;
  std::vector<Column> columns;
  if (!keys.empty()) {
    DEEPRC_ASSIGN_OR_RAISE(Table key_table, table.SelectColumns(keys));
    DEEPRC_ASSIGN_OR_RAISE(Table key_out, Take(key_table, grouping.mapper->first_rows(), threads));
    fields = key_out.schema().fields();
    columns = key_out.columns();
  }

  try {
    for (size_t a = 0; a < aggregates.size(); ++a) {
      const ResolvedAggregate& r = aggregates[a];
      const Column& column = table.column(r.column_index);
      Column out;
      if (IsHolistic(r.aggregate.kind)) {
        DEEPRC_ASSIGN_OR_RAISE(
            out, HolisticAggregate(r, column, grouping.row_group_ids, groups, threads));
      } else {
        AggregateState& total = *states[0][a];
        for (int p = 1; p < grouping.num_parts(); ++p) {
          total.Merge(*states[p][a], grouping.part_maps[p].data(),
                      static_cast<int64_t>(grouping.part_maps[p].size()), groups);
        }
        DEEPRC_RETURN_NOT_OK(total.status());
        DEEPRC_ASSIGN_OR_RAISE(out, total.Finish(groups));
      }
      fields.push_back({r.output_name, out.type()});
      columns.push_back(std::move(out));
    }
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory("out of memory finishing aggregates");
  }
  return Table::Make(Schema(std::move(fields)), std::move(columns), groups);
}

}  // namespace

Result<Table> GroupBy(const Table& table, const GroupByOptions& options) {
  if (options.keys.empty()) {
    return Status::Invalid(
        "group-by needs at least one key column (AggregateTable aggregates "
        "the whole table)");
  }
  for (size_t i = 0; i < options.keys.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (options.keys[i] == options.keys[j]) {
        return Status::Invalid("group-by key '{}' is given twice", options.keys[i]);
      }
    }
  }
  auto key_indices = table.schema().GetFieldIndices(options.keys);
  if (!key_indices.ok()) return key_indices.status().WithContext("group-by key");
  DEEPRC_ASSIGN_OR_RAISE(auto aggregates, Resolve(table, options.aggregates, options.keys));
  return RunAggregation(table, *key_indices, aggregates, options.drop_null_keys, options.threads);
}

Result<Table> AggregateTable(const Table& table, const std::vector<compute::Aggregate>& aggregates,
                             int threads) {
  DEEPRC_ASSIGN_OR_RAISE(auto resolved, Resolve(table, aggregates, {}));
  return RunAggregation(table, {}, resolved, false, threads);
}

}  // namespace deeprc::compute
