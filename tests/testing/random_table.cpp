#include "testing/random_table.h"

#include <random>

#include "deeprc/table/builder.h"

namespace deeprc::testing {
namespace {

const std::vector<std::string>& StringAlphabet() {
  static const std::vector<std::string> pieces = {
      "a", "b", "Z", "q", "0", "7", " ", "é", "ß", "ñ", "Ω", "日本", "東京", "🙂", "-", "_", "x"};
  return pieces;
}

std::string RandomString(std::mt19937_64& rng) {
  const auto& alphabet = StringAlphabet();
  const int length = static_cast<int>(rng() % 7);  // 0..6 pieces: the empty string included
  std::string text;
  for (int i = 0; i < length; ++i) text += alphabet[rng() % alphabet.size()];
  return text;
}

template <typename T>
T RandomNumber(std::mt19937_64& rng, TypeId id) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(static_cast<int64_t>(rng() % 200001) - 100000) / T{8};
  } else if constexpr (std::is_signed_v<T>) {
    if (id == TypeId::kDate32) return static_cast<T>(rng() % 40000);  // 1970..2079
    if (id == TypeId::kTimestamp) return static_cast<T>(rng() % 4000000000000LL);
    const uint64_t bits = rng();
    T value;
    std::memcpy(&value, &bits, sizeof(T));
    if constexpr (sizeof(T) == 8) value /= 4;  // keep sums of a few values from overflowing
    return value;
  } else {
    T value = static_cast<T>(rng());
    if constexpr (sizeof(T) == 8) value /= 4;
    return value;
  }
}

Column RandomColumn(const RandomColumnSpec& spec, int64_t rows, std::mt19937_64& rng) {
  const int64_t cardinality = spec.cardinality > 0 ? spec.cardinality : std::max<int64_t>(rows, 1);
  const int64_t hot_id = 0;
  auto pick_id = [&]() -> int64_t {
    if (spec.skew > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < spec.skew) {
      return hot_id;
    }
    return static_cast<int64_t>(rng() % static_cast<uint64_t>(cardinality));
  };
  auto is_null = [&] {
    return spec.null_fraction > 0 &&
           std::uniform_real_distribution<double>(0, 1)(rng) < spec.null_fraction;
  };
  return VisitType(spec.type.id, [&]<typename Tag>(Tag) -> Column {
    if constexpr (std::is_same_v<Tag, BoolTag>) {
      BoolBuilder builder;
      for (int64_t i = 0; i < rows; ++i) {
        if (is_null()) {
          (void)builder.AppendNull();
        } else {
          (void)builder.Append(pick_id() % 2 == 1);
        }
      }
      return builder.Finish().ValueOrDie();
    } else if constexpr (std::is_same_v<Tag, StringTag>) {
      // A dictionary of `cardinality` strings, drawn by id.
      std::mt19937_64 dictionary_rng(cardinality * 7919 + 17);
      std::vector<std::string> dictionary(static_cast<size_t>(std::min<int64_t>(cardinality, 100000)));
      for (auto& text : dictionary) text = RandomString(dictionary_rng);
      StringBuilder builder;
      for (int64_t i = 0; i < rows; ++i) {
        if (is_null()) {
          (void)builder.AppendNull();
        } else {
          (void)builder.Append(dictionary[pick_id() % dictionary.size()]);
        }
      }
      return builder.Finish().ValueOrDie();
    } else {
      using T = typename Tag::CType;
      std::mt19937_64 dictionary_rng(cardinality * 104729 + static_cast<int>(spec.type.id));
      std::vector<T> dictionary(static_cast<size_t>(std::min<int64_t>(cardinality, 1000000)));
      for (auto& value : dictionary) value = RandomNumber<T>(dictionary_rng, spec.type.id);
      NumberBuilder<T> builder(spec.type);
      (void)builder.Reserve(rows);
      for (int64_t i = 0; i < rows; ++i) {
        if (is_null()) {
          builder.UnsafeAppendNull();
        } else {
          builder.UnsafeAppend(dictionary[pick_id() % dictionary.size()]);
        }
      }
      return builder.Finish().ValueOrDie();
    }
  });
}

}  // namespace

Table RandomTable(const std::vector<RandomColumnSpec>& columns, int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Field> fields;
  std::vector<Column> data;
  for (const auto& spec : columns) {
    fields.push_back({spec.name, spec.type});
    data.push_back(RandomColumn(spec, rows, rng));
  }
  return Table::Make(Schema(std::move(fields)), std::move(data), rows).ValueOrDie();
}

std::vector<RandomColumnSpec> AllTypesSpec(double null_fraction, int64_t cardinality) {
  std::vector<RandomColumnSpec> specs;
  for (TypeId id : {TypeId::kBool, TypeId::kInt8, TypeId::kInt16, TypeId::kInt32, TypeId::kInt64,
                    TypeId::kUInt8, TypeId::kUInt16, TypeId::kUInt32, TypeId::kUInt64,
                    TypeId::kFloat32, TypeId::kFloat64, TypeId::kString, TypeId::kDate32}) {
    specs.push_back({std::string(TypeIdName(id)), DataType(id), null_fraction, cardinality});
  }
  specs.push_back({"timestamp_ms", DataType::Timestamp(TimeUnit::kMilli), null_fraction, cardinality});
  return specs;
}

}  // namespace deeprc::testing
