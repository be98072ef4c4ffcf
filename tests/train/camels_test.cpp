#include "deeprc/train/camels.h"

#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "deeprc/table/temporal.h"
#include "testing/assertions.h"

namespace deeprc::train {
namespace {

namespace fs = std::filesystem;

const std::string kShipped = std::string(DEEPRC_SOURCE_DIR) + "/tests/data/hydrology";

fs::path FreshDirectory(const std::string& name) {
  const fs::path directory =
      fs::temp_directory_path() / fmt::format("camels_test_{}_{}", ::getpid(), name);
  fs::remove_all(directory);
  fs::create_directories(directory / "forcing_daymet");
  fs::create_directories(directory / "usgs_streamflow");
  return directory;
}

void Write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A random basin written in CAMELS' layout: `days` days from 2000-01-01, some streamflow days
// -999 and some without a line. The expected values come back in `expected`.
struct Synthetic {
  CamelsBasin expected;
  std::string forcing, streamflow;
};

Synthetic MakeSynthetic(std::mt19937_64& random, const std::string& id, int days) {
  Synthetic made;
  CamelsBasin& basin = made.expected;
  basin.id = id;
  basin.latitude = 30 + static_cast<double>(random() % 1500) / 100;
  basin.elevation_m = static_cast<double>(random() % 2000);
  basin.area_m2 = 1e7 + static_cast<double>(random() % 1000000000);
  basin.forcing_names = {"dayl", "prcp", "srad", "swe", "tmax", "tmin", "vp"};
  basin.forcings.assign(7, {});
  std::ostringstream forcing, streamflow;
  forcing << fmt::format(" {:.2f}\n {:.2f}\n {:.0f}\n", basin.latitude, basin.elevation_m,
                         basin.area_m2);
  forcing << "Year Mnth Day Hr dayl(s) prcp(mm/day) srad(W/m2) swe(mm) tmax(C) tmin(C) vp(Pa)\n";
  std::uniform_real_distribution<double> value(-20, 400);
  const int32_t first = static_cast<int32_t>(temporal::DaysFromCivil(2000, 1, 1));
  for (int t = 0; t < days; ++t) {
    const int32_t day = first + t;
    basin.days.push_back(day);
    int64_t year = 0;
    unsigned month = 0, day_of_month = 0;
    temporal::CivilFromDays(day, &year, &month, &day_of_month);
    forcing << fmt::format("{} {:02d} {:02d} 12", year, month, day_of_month);
    for (int f = 0; f < 7; ++f) {
      const double v = std::round(value(random) * 100) / 100;
      basin.forcings[f].push_back(v);
      forcing << '\t' << fmt::format("{:.2f}", v);
    }
    forcing << '\n';
    const int kind = static_cast<int>(random() % 10);
    if (kind == 0) {  // no line at all
      basin.streamflow.push_back(NAN);
      continue;
    }
    const double cfs = kind == 1 ? -999 : static_cast<double>(random() % 5000);
    basin.streamflow.push_back(kind == 1 ? NAN : cfs * 0.0283168466 * 86400 / basin.area_m2 * 1000);
    streamflow << fmt::format("{} {} {:02d} {:02d} {:8.2f} {}\n", id, year, month, day_of_month,
                              cfs, kind == 1 ? "M" : "A");
  }
  made.forcing = forcing.str();
  made.streamflow = streamflow.str();
  return made;
}

void WriteBasin(const fs::path& root, const std::string& id, const Synthetic& made) {
  Write(root / "forcing_daymet" / (id + "_lump_cida_forcing_leap.txt"), made.forcing);
  Write(root / "usgs_streamflow" / (id + "_streamflow_qc.txt"), made.streamflow);
}

TEST(CamelsTest, ShippedBasinConvertsCubicFeetPerSecondToMillimetresPerDay) {
  ASSERT_OK_AND_ASSIGN(auto ids, CamelsBasinIds(kShipped));
  EXPECT_EQ(ids, (std::vector<std::string>{"01022500", "01547700", "02064000", "03015500"}));
  ASSERT_OK_AND_ASSIGN(CamelsBasin basin, ReadCamelsBasin(kShipped, "01022500"));
  EXPECT_DOUBLE_EQ(basin.latitude, 44.82);
  EXPECT_DOUBLE_EQ(basin.elevation_m, 133.0);
  EXPECT_DOUBLE_EQ(basin.area_m2, 587675987.0);
  EXPECT_EQ(basin.forcing_names,
            (std::vector<std::string>{"dayl", "prcp", "srad", "swe", "tmax", "tmin", "vp"}));
  // 2000-01-01 .. 2003-12-31: 366 + 365 + 365 + 365 days.
  ASSERT_EQ(basin.num_days(), 1461);
  EXPECT_EQ(temporal::FormatDate(basin.days.front()), "2000-01-01");
  EXPECT_EQ(temporal::FormatDate(basin.days.back()), "2003-12-31");
  // First forcing line: 2000 01 01 12 31185.97 0.00 189.56 0.00 -2.36 -14.36 202.51
  EXPECT_DOUBLE_EQ(basin.forcings[0][0], 31185.97);
  EXPECT_DOUBLE_EQ(basin.forcings[4][0], -2.36);
  EXPECT_DOUBLE_EQ(basin.forcings[6][0], 202.51);
  // By hand: 255 ft3/s x 0.0283168466 m3/ft3 = 7.22080 m3/s; x 86400 s = 623,877 m3/day;
  // / 587,675,987 m2 = 0.00106160 m/day = 1.06160 mm/day. Then 272 and 337 ft3/s.
  EXPECT_NEAR(basin.streamflow[0], 1.06160, 1e-5);
  EXPECT_NEAR(basin.streamflow[1], 1.13237, 1e-5);
  EXPECT_NEAR(basin.streamflow[2], 1.40298, 1e-5);
  EXPECT_NEAR(CfsToMillimetresPerDay(255, 587675987), 1.06160, 1e-5);
  // The streamflow file ends on 2002-12-31: 2003 is missing.
  const int64_t first_2003 = 366 + 365 + 365;
  EXPECT_FALSE(std::isnan(basin.streamflow[first_2003 - 1]));
  for (int64_t t = first_2003; t < basin.num_days(); ++t)
    EXPECT_TRUE(std::isnan(basin.streamflow[t]));
}

TEST(CamelsTest, RandomBasinsReadBackWithMissingDays) {
  std::mt19937_64 random(11);
  const fs::path root = FreshDirectory("random");
  for (int trial = 0; trial < 5; ++trial) {
    const std::string id = fmt::format("0{}", 1000000 + trial);
    const Synthetic made = MakeSynthetic(random, id, 30 + static_cast<int>(random() % 800));
    WriteBasin(root, id, made);
    ASSERT_OK_AND_ASSIGN(CamelsBasin basin, ReadCamelsBasin(root.string(), id));
    const CamelsBasin& expected = made.expected;
    EXPECT_NEAR(basin.area_m2, expected.area_m2, 0.5);
    ASSERT_EQ(basin.days, expected.days);
    ASSERT_EQ(basin.forcings.size(), expected.forcings.size());
    for (size_t f = 0; f < expected.forcings.size(); ++f) {
      for (size_t t = 0; t < expected.days.size(); ++t) {
        EXPECT_NEAR(basin.forcings[f][t], expected.forcings[f][t], 1e-9);
      }
    }
    for (size_t t = 0; t < expected.days.size(); ++t) {
      if (std::isnan(expected.streamflow[t])) {
        EXPECT_TRUE(std::isnan(basin.streamflow[t])) << "day " << t;
      } else {
        // The file holds q with 2 decimals; the area was written rounded to 1 m2.
        EXPECT_NEAR(basin.streamflow[t], expected.streamflow[t],
                    1e-6 * std::max(1.0, expected.streamflow[t]))
            << "day " << t;
      }
    }
  }
  fs::remove_all(root);
}

// The error of reading `forcing`/`streamflow` text for basin 01000000.
std::string ReadError(const fs::path& root, const std::string& forcing,
                      const std::string& streamflow) {
  Write(root / "forcing_daymet" / "01000000_lump_cida_forcing_leap.txt", forcing);
  Write(root / "usgs_streamflow" / "01000000_streamflow_qc.txt", streamflow);
  auto read = ReadCamelsBasin(root.string(), "01000000");
  return read.ok() ? "" : read.status().message();
}

TEST(CamelsTest, MalformedFilesNameTheFileAndLine) {
  std::mt19937_64 random(5);
  const fs::path root = FreshDirectory("malformed");
  const Synthetic made = MakeSynthetic(random, "01000000", 40);
  ASSERT_EQ(ReadError(root, made.forcing, made.streamflow), "");

  auto replace_line = [](const std::string& text, int line, const std::string& with) {
    std::istringstream in(text);
    std::string out, current;
    for (int number = 1; std::getline(in, current); ++number) {
      out += (number == line ? with : current) + "\n";
    }
    return out;
  };
  // A bad number on line 10 (the 6th day).
  std::string error = ReadError(
      root, replace_line(made.forcing, 10, "2000 01 06 12\t1\t2\tx3\t4\t5\t6\t7"), made.streamflow);
  EXPECT_NE(error.find("01000000_lump_cida_forcing_leap.txt:10:"), std::string::npos) << error;
  EXPECT_NE(error.find("'x3'"), std::string::npos) << error;
  // A skipped day.
  error = ReadError(root, replace_line(made.forcing, 10, "2000 01 07 12\t1\t2\t3\t4\t5\t6\t7"),
                    made.streamflow);
  EXPECT_NE(error.find("forcing_leap.txt:10:"), std::string::npos) << error;
  EXPECT_NE(error.find("2000-01-07 does not follow 2000-01-05"), std::string::npos) << error;
  // Too few fields, an impossible date, a bad header.
  error = ReadError(root, replace_line(made.forcing, 7, "2000 01 03 12\t1\t2"), made.streamflow);
  EXPECT_NE(error.find("forcing_leap.txt:7: expected 11 fields, found 6"), std::string::npos)
      << error;
  error = ReadError(root, replace_line(made.forcing, 5, "2000 02 30 12\t1\t2\t3\t4\t5\t6\t7"),
                    made.streamflow);
  EXPECT_NE(error.find("forcing_leap.txt:5: '2000 02 30' is not a date"), std::string::npos)
      << error;
  error = ReadError(root, replace_line(made.forcing, 3, " big"), made.streamflow);
  EXPECT_NE(error.find("forcing_leap.txt:3: expected the catchment area"), std::string::npos)
      << error;
  // Streamflow: another basin's line, a bad number, a repeated day.
  const std::string first_line = made.streamflow.substr(0, made.streamflow.find('\n'));
  error =
      ReadError(root, made.forcing, replace_line(made.streamflow, 2, "01999999 2000 01 02 5 A"));
  EXPECT_NE(error.find("01000000_streamflow_qc.txt:2: a line of basin 01999999"), std::string::npos)
      << error;
  error =
      ReadError(root, made.forcing, replace_line(made.streamflow, 3, "01000000 2000 01 03 x A"));
  EXPECT_NE(error.find("streamflow_qc.txt:3: streamflow 'x' is not a number"), std::string::npos)
      << error;
  error = ReadError(root, made.forcing, first_line + "\n" + made.streamflow);
  EXPECT_NE(error.find("streamflow_qc.txt:2: a second line for"), std::string::npos) << error;
  // A missing file names the path.
  auto missing = ReadCamelsBasin(root.string(), "09999999");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("09999999_lump_cida_forcing_leap.txt"),
            std::string::npos);
  fs::remove_all(root);
}

TEST(CamelsTest, DatasetStandardizesWithTrainingYearsOnly) {
  std::mt19937_64 random(21);
  const fs::path root = FreshDirectory("dataset");
  const Synthetic made = MakeSynthetic(random, "01000000", 366 + 365 + 365);  // 2000-2002
  WriteBasin(root, "01000000", made);
  ASSERT_OK_AND_ASSIGN(CamelsBasin basin, ReadCamelsBasin(root.string(), "01000000"));
  HydroDataOptions options;  // 21 days, train 2000-2001, test 2002
  options.inputs = {"prcp", "tmax"};
  ASSERT_OK_AND_ASSIGN(HydroDataset data, HydroDataset::Make(basin, options));
  EXPECT_EQ(data.features(), 2);
  // Training targets: 2000-01-21 .. 2001-12-31; test: every day of 2002.
  ASSERT_EQ(data.training().size(), static_cast<size_t>(366 + 365 - 20));
  EXPECT_EQ(data.training().front(), 20);
  ASSERT_EQ(data.test().size(), 365u);
  EXPECT_EQ(data.test().front(), 366 + 365);

  // The target's statistics are those of the observed training days.
  double sum = 0, count = 0;
  for (int64_t t : data.training()) {
    if (!std::isnan(basin.streamflow[t])) sum += basin.streamflow[t], count += 1;
  }
  EXPECT_NEAR(data.target_mean(), sum / count, 1e-9 * std::max(1.0, sum / count));

  // The window of the first test day holds 20 days of 2001 and 2002-01-01; inputs standardized
  // with the training years' mean and deviation (computed here independently).
  std::vector<float> x, y, mask;
  const int64_t day = data.test().front();
  data.Fill(std::span<const int64_t>(&day, 1), &x, &y, &mask);
  ASSERT_EQ(x.size(), 21u * 2);
  const std::vector<double>& prcp = basin.forcings[1];
  double mean = 0;
  for (int64_t t = 0; t < 366 + 365; ++t) mean += prcp[t];
  mean /= 366 + 365;
  double variance = 0;
  for (int64_t t = 0; t < 366 + 365; ++t) variance += (prcp[t] - mean) * (prcp[t] - mean);
  const double std = std::sqrt(variance / (366 + 365));
  for (int i = 0; i < 21; ++i) {
    EXPECT_NEAR(x[i * 2], (prcp[day - 20 + i] - mean) / std, 1e-4);
  }
  EXPECT_EQ(mask[0], std::isnan(basin.streamflow[day]) ? 0.0f : 1.0f);
  if (mask[0] == 1.0f) {
    EXPECT_NEAR(data.ToStreamflow(y[0]), basin.streamflow[day], 1e-4 * data.target_std());
  }

  // Changing the test year's values changes nothing about the training samples.
  CamelsBasin changed = basin;
  for (auto& forcing : changed.forcings) {
    for (int64_t t = 366 + 365; t < changed.num_days(); ++t) forcing[t] *= 3;
  }
  for (int64_t t = 366 + 365; t < changed.num_days(); ++t) changed.streamflow[t] = 1e6;
  ASSERT_OK_AND_ASSIGN(HydroDataset other, HydroDataset::Make(changed, options));
  std::vector<float> x2, y2, mask2;
  data.Fill(data.training(), &x, &y, &mask);
  other.Fill(other.training(), &x2, &y2, &mask2);
  EXPECT_EQ(x, x2);
  EXPECT_EQ(y, y2);
  EXPECT_EQ(mask, mask2);

  // Missing targets are masked: y 0, mask 0.
  int64_t missing = 0;
  for (size_t i = 0; i < data.training().size(); ++i) {
    if (std::isnan(basin.streamflow[data.training()[i]])) {
      ++missing;
      EXPECT_EQ(mask[i], 0.0f);
      EXPECT_EQ(y[i], 0.0f);
    } else {
      EXPECT_EQ(mask[i], 1.0f);
    }
  }
  EXPECT_GT(missing, 0);

  // Bad options say what is wrong.
  HydroDataOptions bad = options;
  bad.test_year = 2003;
  auto made_bad = HydroDataset::Make(basin, bad);
  ASSERT_FALSE(made_bad.ok());
  EXPECT_NE(made_bad.status().message().find("no day of the test year 2003"), std::string::npos)
      << made_bad.status().message();
  bad = options;
  bad.inputs = {"rain"};
  made_bad = HydroDataset::Make(basin, bad);
  ASSERT_FALSE(made_bad.ok());
  EXPECT_NE(made_bad.status().message().find("no forcing 'rain'"), std::string::npos);
  bad = options;
  bad.test_year = 2001;
  EXPECT_FALSE(HydroDataset::Make(basin, bad).ok());
  fs::remove_all(root);
}

}  // namespace
}  // namespace deeprc::train
