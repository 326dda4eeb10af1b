// Fuzzes the published dataset's CSV reader (data/dataset.cpp), at every level.
#include "fuzz.hpp"
#include "irene/data/dataset.hpp"

IRENE_FUZZ_ENTRY(csv) {
  return irene::fuzz::run([&] {
    const auto level = static_cast<irene::DatasetLevel>(size > 0 ? data[0] % 4 : 0);
    irene::DatasetTable table;
    irene::parse_level_csv(irene::fuzz::text(data, size).substr(size > 0 ? 1 : 0), "fuzz.csv", level, table);
    for (const auto& r : table.rows)
      if (r.batch_size < 1 || r.seq_len < 1 || r.resources.size() != table.resource_columns.size()) std::abort();
  });
}
