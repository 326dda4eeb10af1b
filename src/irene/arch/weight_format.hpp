// Quantized weight formats and the key/value-cache dtype: the one rule for their bytes.
//
// The weight format is an attribute of a model separate from its activation dtype:
//   same  (same-as-dtype): every weight in the activation dtype (2 bytes for bfloat16);
//   fp8   e4m3 values (1 byte) + one float32 scale (4 bytes) per block of block x block weights
//         (128 x 128 as DeepSeek-V3 / Qwen FP8 "weight_block_size");
//   mxfp4 4-bit values + one 8-bit shared exponent per 32 values along the input: 4.25 bits/weight;
//   int8  1 byte per weight + one float16 scale (2 bytes) per output channel;
//   int4  (GPTQ/AWQ) 4 bits per weight + per group of group_size inputs along each output row one
//         float16 scale (2 bytes) and one packed 4-bit zero point (0.5 byte); group_size default 128.
// Quantized are the Linear weights of the decoder layers (and experts); embeddings, norms and
// lm_head stay in the activation dtype, and so does any module that quantization_config names in
// modules_to_not_convert / ignored_layers, and the routers. FLOPs of a matmul do not change; the
// dequantize work, done inside the GEMM, is the Linear's attr dequantize_ops (TreeBuilder::quantize):
// per weight element read for mxfp4 / int8 / int4 (int4: two), per output partial sum of a block
// for fp8's block-scaled GEMMs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace irene {

enum class WeightFormat { Same, Fp8, Mxfp4, Int8, Int4 };

struct WeightQuant {
  WeightFormat format = WeightFormat::Same;
  int block = 128;        // fp8: block edge (weights per block = block x block)
  int group_size = 128;   // int4: inputs per scale/zero group
  std::vector<std::string> not_converted;  // module patterns kept in the activation dtype ('*' wildcards)
};

// "same" / "same-as-dtype" | "fp8" | "mxfp4" | "int8" | "int4"; anything else is an Error naming
// `what` (the option or file) and the accepted values.
WeightFormat parse_weight_format(std::string_view text, std::string_view what);
std::string_view weight_format_name(WeightFormat f);

// A Hugging Face config's "quantization_config" (quant_method fp8 / mxfp4 / gptq / awq /
// bitsandbytes-style int8, weight_block_size, bits, group_size, modules_to_not_convert,
// ignored_layers). Absent or null: WeightFormat::Same. Unknown method or bad field: an Error
// naming `where` (the file) and the field.
WeightQuant parse_quantization_config(const nlohmann::json& config, std::string_view where);

// Whether the module with dotted name `module` (e.g. "model.layers.3.self_attn.q_proj") is kept
// in the activation dtype by q.not_converted (a pattern matches the name or any dotted prefix).
bool kept_unquantized(const WeightQuant& q, std::string_view module);

// Bytes of the weight of one Linear with `out` outputs and `in` inputs, scales and zeros included;
// `activation_bytes` is the bytes of one element of the activation dtype (used by Same).
double linear_weight_bytes(std::int64_t out, std::int64_t in, const WeightQuant& q, double activation_bytes);

// Bytes per weight of a large matrix (scales spread over their block/group): what a count that
// only knows the number of parameters multiplies by. Same: activation_bytes.
double weight_bytes_per_parameter(const WeightQuant& q, double activation_bytes);

// Element-wise operations of dequantizing the weight of one Linear (one per weight element;
// zero for Same): the work of the "Dequantize" op of that Linear. Not matmul FLOPs.
double dequantize_ops(std::int64_t out, std::int64_t in, const WeightQuant& q);

// --kv-cache-dtype: "fp8" 1, "bfloat16"/"float16" 2, "float32" 4 bytes per cached element;
// anything else is an Error naming `what`.
double kv_cache_element_bytes(std::string_view dtype, std::string_view what);

}  // namespace irene
