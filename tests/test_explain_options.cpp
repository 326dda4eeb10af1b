// The options of the explanation commands, defined once (explain/source.hpp) for the command line
// and Python, and the library functions both call (explain/api.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "irene/core/error.hpp"
#include "irene/explain/api.hpp"
#include "irene/explain/source.hpp"

namespace {

using namespace irene;
using namespace irene::explain;

// Every keyword (and alias) once; the long flag, '-' read as '_', is the keyword or an alias.
template <class T>
void expect_one_keyword_per_flag(const std::vector<Option<T>>& options) {
  std::set<std::string> seen;
  for (const auto& o : options) {
    std::vector<std::string> names{o.keyword};
    names.insert(names.end(), o.aliases.begin(), o.aliases.end());
    for (const auto& n : names) EXPECT_TRUE(seen.insert(n).second) << n;
    std::string flag = o.flags.substr(2, o.flags.find(',') == std::string::npos ? std::string::npos : o.flags.find(',') - 2);
    for (auto& c : flag)
      if (c == '-') c = '_';
    EXPECT_TRUE(flag == o.keyword || std::find(o.aliases.begin(), o.aliases.end(), flag) != o.aliases.end())
        << o.flags << " " << o.keyword;
    EXPECT_FALSE(o.help.empty()) << o.keyword;
  }
}

TEST(ExplainOptions, OneKeywordPerFlagInEveryTable) {
  expect_one_keyword_per_flag(pass_options());
  expect_one_keyword_per_flag(source_options());
  expect_one_keyword_per_flag(explain_options());
  expect_one_keyword_per_flag(compare_options());
  EXPECT_EQ(source_options().size(), 5 + pass_options().size() + 2);
}

TEST(ExplainOptions, TheTablesSetTheirFields) {
  Source s;
  for (const auto& o : source_options()) {
    if (o.keyword == "kv_cache_dtype") o.text(s) = "fp8";
    if (o.keyword == "overrides") o.list(s).push_back("n_layer=2");
    if (o.keyword == "allow_long") o.flag(s) = true;
    if (o.keyword == "generate") o.text(s) = "16:32:16";
  }
  EXPECT_EQ(s.pass.kv_cache_dtype, "fp8");
  EXPECT_EQ(s.overrides, std::vector<std::string>{"n_layer=2"});
  EXPECT_TRUE(s.pass.allow_long);
  EXPECT_EQ(s.generate, "16:32:16");
  ExplainRequest r;
  for (const auto& o : explain_options())
    if (o.keyword == "top") o.integer(r) = 3;
  EXPECT_EQ(r.top, 3);
}

TEST(ExplainOptions, SideBTakesAsOptionsAndItsOwn) {
  CompareRequest r;
  r.a.what = "gpt2";
  r.a.batch = "4";
  r.a.overrides = {"n_layer=6"};
  r.a.pass.phase = "decode";
  r.a.pass.past = "100";
  r.a.pass.dtype = "float16";
  r.past_b = "200";
  r.kv_cache_dtype_b = "fp8";
  Source b = side_b(r);
  EXPECT_EQ(b.what, "gpt2");
  EXPECT_EQ(b.batch, "4");
  EXPECT_TRUE(b.overrides.empty());  // --set-a is a's alone
  EXPECT_EQ(b.pass.past, "200");
  EXPECT_EQ(b.pass.dtype, "float16");
  EXPECT_EQ(b.pass.kv_cache_dtype, "fp8");
  r.a.pass.phase = "";
  EXPECT_THROW(side_b(r), Error);
}

TEST(ExplainOptions, CarbonIntensityIsANumberInRange) {
  EXPECT_FALSE(parse_carbon_intensity("").has_value());
  EXPECT_DOUBLE_EQ(*parse_carbon_intensity("400"), 400.0);
  for (const char* bad : {"-1", "abc", "1e9", "nan", "400g"}) EXPECT_THROW(parse_carbon_intensity(bad), Error) << bad;
}

}  // namespace
