// What a part of a Transformer does: the kind the family table (family_table.hpp) declares for
// each module of a family, read by explanations (explain/).
#pragma once

#include <string_view>

namespace irene {

// The first six are the explanation's split (explain/'s all_module_kinds, in this order);
// experts and router are the parts of a mixture-of-experts block, for the families that have
// one (explanations count them as feed-forward).
enum class ModuleKind { attention, feed_forward, embeddings, norm, lm_head, other, experts, router };

// "attention", "feed-forward", "embeddings", "norm", "lm head", "other", "experts", "router".
std::string_view module_kind_name(ModuleKind kind);

}  // namespace irene
