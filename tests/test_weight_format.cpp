// Quantized weight formats and the key/value-cache dtype (src/irene/arch/weight_format.hpp):
// bytes of a Linear under each format against an independent count, the quantization_config
// of published configs, and the one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/jsonl.hpp"
#include "irene/arch/registry.hpp"
#include "irene/arch/weight_format.hpp"
#include "irene/core/error.hpp"
#include "irene/hardware/hardware.hpp"
#include "irene/serving/crossval.hpp"
#include "irene/serving/predictor.hpp"

using namespace irene;

namespace {

std::string error_text(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

nlohmann::json read_json(const std::string& rel) {
  std::ifstream in(std::string(IRENE_SOURCE_DIR) + "/" + rel);
  return nlohmann::json::parse(in);
}

WeightQuant quant(WeightFormat f) {
  WeightQuant q;
  q.format = f;
  return q;
}

}  // namespace

// A Linear of 300 outputs x 200 inputs (not multiples of the blocks: partial blocks count whole).
TEST(WeightFormat, LinearBytesOfEachFormatMatchAnIndependentCount) {
  const std::int64_t out = 300, in = 200;
  const double n = 300.0 * 200;
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, quant(WeightFormat::Same), 2), n * 2);
  // fp8: one byte each, one float32 scale per 128x128 block: 3 x 2 blocks
  double scales = 0;
  for (int r = 0; r < out; r += 128)
    for (int c = 0; c < in; c += 128) scales += 4;
  EXPECT_DOUBLE_EQ(scales, 24);
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, quant(WeightFormat::Fp8), 2), n + scales);
  // mxfp4: half a byte each, one 8-bit exponent per 32 inputs of a row (7 per row, the last partial)
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, quant(WeightFormat::Mxfp4), 2), n / 2 + 300 * 7);
  // int8: one byte each, one float16 scale per output row
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, quant(WeightFormat::Int8), 2), n + 300 * 2);
  // int4, group 64: half a byte each, per row 4 groups (64,64,64,8) of float16 scale + 4-bit zero
  WeightQuant g = quant(WeightFormat::Int4);
  g.group_size = 64;
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, g, 2), n / 2 + 300 * 4 * 2.5);
  g.group_size = 128;
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, g, 2), n / 2 + 300 * 2 * 2.5);
  // no dequantize work in the activation dtype; one op per weight element otherwise
  EXPECT_EQ(dequantize_ops(out, in, quant(WeightFormat::Same)), 0);
  EXPECT_EQ(dequantize_ops(out, in, quant(WeightFormat::Mxfp4)), n);
}

// What must hold: fp8 about half of bfloat16 (plus its scales), mxfp4 about a quarter.
TEST(WeightFormat, Fp8HalvesBfloat16PlusScalesAndMxfp4IsAboutAQuarter) {
  const std::int64_t out = 4096, in = 14336;
  const double bf16 = linear_weight_bytes(out, in, quant(WeightFormat::Same), 2);
  const double fp8 = linear_weight_bytes(out, in, quant(WeightFormat::Fp8), 2);
  const double mx = linear_weight_bytes(out, in, quant(WeightFormat::Mxfp4), 2);
  EXPECT_DOUBLE_EQ(fp8 - bf16 / 2, 4.0 * (4096 / 128) * (14336 / 128));
  EXPECT_NEAR(mx / bf16, 4.25 / 16, 1e-12);
  // the per-parameter rule for large matrices agrees with the exact count
  EXPECT_DOUBLE_EQ(fp8 / (4096.0 * 14336), weight_bytes_per_parameter(quant(WeightFormat::Fp8), 2));
  EXPECT_DOUBLE_EQ(mx / (4096.0 * 14336), weight_bytes_per_parameter(quant(WeightFormat::Mxfp4), 2));
  EXPECT_DOUBLE_EQ(linear_weight_bytes(out, in, quant(WeightFormat::Int4), 2) / (4096.0 * 14336),
                   weight_bytes_per_parameter(quant(WeightFormat::Int4), 2));
  // the serving predictor's bytes per weight are the same rule
  EXPECT_DOUBLE_EQ(serving::weight_bytes_per_parameter("fp8"), weight_bytes_per_parameter(quant(WeightFormat::Fp8), 2));
  EXPECT_DOUBLE_EQ(serving::weight_bytes_per_parameter("mxfp4"),
                   weight_bytes_per_parameter(quant(WeightFormat::Mxfp4), 2));
  EXPECT_DOUBLE_EQ(serving::weight_bytes_per_parameter("bfloat16"), 2);
}

TEST(WeightFormat, KvCacheDtypeBytes) {
  EXPECT_EQ(kv_cache_element_bytes("fp8", "--kv-cache-dtype"), 1);
  EXPECT_EQ(kv_cache_element_bytes("bfloat16", "--kv-cache-dtype"), 2);
  EXPECT_EQ(kv_cache_element_bytes("float16", "--kv-cache-dtype"), 2);
  EXPECT_EQ(kv_cache_element_bytes("float32", "--kv-cache-dtype"), 4);
  EXPECT_EQ(error_text([] { kv_cache_element_bytes("int4", "--kv-cache-dtype"); }),
            "--kv-cache-dtype: unknown key/value-cache dtype 'int4': expected fp8, bfloat16, float16 or float32");
}

TEST(WeightFormat, QuantizationConfigOfPublishedConfigs) {
  const auto ds = parse_quantization_config(read_json("docs/families-2026/configs/deepseek-ai/DeepSeek-V3/config.json"),
                                            "DeepSeek-V3/config.json");
  EXPECT_EQ(ds.format, WeightFormat::Fp8);
  EXPECT_EQ(ds.block, 128);
  EXPECT_TRUE(ds.not_converted.empty());
  const auto oss = parse_quantization_config(read_json("docs/families-2026/configs/openai/gpt-oss-20b/config.json"),
                                             "gpt-oss-20b/config.json");
  EXPECT_EQ(oss.format, WeightFormat::Mxfp4);
  // attention, router, embeddings and lm_head stay in the activation dtype; the experts do not
  EXPECT_TRUE(kept_unquantized(oss, "model.layers.3.self_attn.q_proj"));
  EXPECT_TRUE(kept_unquantized(oss, "model.layers.0.mlp.router"));
  EXPECT_TRUE(kept_unquantized(oss, "lm_head"));
  EXPECT_TRUE(kept_unquantized(oss, "model.embed_tokens"));
  EXPECT_FALSE(kept_unquantized(oss, "model.layers.3.mlp.experts.gate_up_proj"));
  // FBGEMM's fp8 (Llama-3.1-405B-Instruct-FP8 of the serving table) is fp8
  const auto fb = parse_quantization_config(
      read_json("configs/serving-models/meta-llama/Llama-3.1-405B-Instruct-FP8/config.json"), "405B-FP8/config.json");
  EXPECT_EQ(fb.format, WeightFormat::Fp8);
  // no quantization_config: weights in the activation dtype
  EXPECT_EQ(parse_quantization_config(nlohmann::json{{"model_type", "llama"}}, "c.json").format, WeightFormat::Same);
  // GPTQ/AWQ int4 with its group size; ignored_layers honoured
  const auto gptq = parse_quantization_config(
      nlohmann::json::parse(R"({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 32,
                                                         "ignored_layers": ["lm_head"]}})"),
      "c.json");
  EXPECT_EQ(gptq.format, WeightFormat::Int4);
  EXPECT_EQ(gptq.group_size, 32);
  EXPECT_TRUE(kept_unquantized(gptq, "lm_head"));
  EXPECT_EQ(parse_quantization_config(nlohmann::json::parse(R"({"quantization_config": {"quant_method": "awq"}})"),
                                      "c.json")
                .group_size,
            128);
}

TEST(WeightFormat, BadValuesAreRefusedInOneLineNamingTheOptionOrFile) {
  EXPECT_EQ(error_text([] { parse_weight_format("int3", "--weights"); }),
            "--weights: unknown weight format 'int3': expected same-as-dtype, fp8, mxfp4, int8 or int4");
  EXPECT_EQ(parse_weight_format("fp8", "--weights"), WeightFormat::Fp8);
  const auto bad = [](const char* qc) {
    return error_text([&] { parse_quantization_config(nlohmann::json::parse(qc), "m/config.json"); });
  };
  EXPECT_EQ(bad(R"({"quantization_config": {"quant_method": "hqq"}})"),
            "m/config.json: quantization_config.quant_method 'hqq' is not supported: expected fp8, fbgemm_fp8, mxfp4, gptq or awq");
  EXPECT_EQ(bad(R"({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 64]}})"),
            "m/config.json: quantization_config.weight_block_size must be [n, n] with n a positive integer, got [128,64]");
  EXPECT_EQ(bad(R"({"quantization_config": {"quant_method": "gptq", "bits": 3}})"),
            "m/config.json: quantization_config.bits 3 of gptq is not supported: expected 4 or 8");
  EXPECT_EQ(bad(R"({"quantization_config": {"quant_method": "awq", "group_size": 0}})"),
            "m/config.json: quantization_config.group_size must be a positive integer, got 0");
  EXPECT_EQ(bad(R"({"quantization_config": {"bits": 4}})"),
            "m/config.json: quantization_config.quant_method must be a string");
  EXPECT_EQ(bad(R"({"quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": "lm_head"}})"),
            "m/config.json: quantization_config.modules_to_not_convert must be a list of module names");
}

// Physical consistency with the shipped serving predictor (fitted on the ML.ENERGY table where it
// is present): for a memory-bound decode step (one sequence in flight) fewer weight bytes never
// cost more energy per generated token: mxfp4 <= fp8 <= bfloat16.
TEST(WeightFormat, QuantizedWeightsNeverCostMoreInAMemoryBoundDecodeStep) {
  const auto table = serving::default_table();
  std::error_code ec;
  if (table.empty() || !std::filesystem::is_regular_file(table, ec)) GTEST_SKIP() << "no serving table";
  for (const char* model : {"meta-llama/Llama-3.1-8B-Instruct"}) {
    for (const char* gpu : {"H100", "B200"}) {
      double last = 0;
      for (const char* precision : {"bfloat16", "fp8", "mxfp4"}) {
        serving::Workload w;
        w.batch = 1;
        w.prompt_tokens = 180;
        w.output_tokens = 400;
        w.precision = precision;
        const auto r = serving::serving_report(serving::load_serving_model(model), w,
                                               hardware::load_profile(gpu), table, false);
        const double j = r["energy_per_token_j"]["value"].get<double>();
        EXPECT_GT(j, 0) << model << " " << gpu << " " << precision;
        if (last > 0) EXPECT_LE(j, last) << model << " " << gpu << " " << precision;
        last = j;
      }
    }
  }
}

// --kv-cache-dtype changes the cache bytes of a decode step exactly by the ratio of its element
// bytes (the attention's cache reads and the cache held), and leaves the weights alone.
TEST(WeightFormat, KvCacheDtypeScalesTheDecodeStepCacheBytesExactly) {
  const ModelConfig c = serving::load_serving_model("meta-llama/Llama-3.1-8B-Instruct");
  const auto& hw = *hardware::find_builtin("H100");
  serving::Workload w;
  w.batch = 4;
  w.prompt_tokens = 180;
  w.output_tokens = 400;
  const auto cache_read = [&](const serving::StepWork& s) {
    double bytes = 0;
    for (const auto& u : s.units)
      if (!u.prefill && u.key == "ScaledDotProductAttention") {
        const Node& n = s.tree.nodes[u.node];
        bytes += u.bytes - attr(n, "batch") * attr(n, "heads") * 2.0 * attr(n, "m") * attr(n, "d") * 2;
      }
    return bytes;
  };
  const auto bf = serving::step_work(c, w, hw);
  for (const auto& [dtype, ratio] : std::vector<std::pair<std::string, double>>{{"fp8", 0.5}, {"float32", 2.0}}) {
    w.kv_cache_dtype = dtype;
    const auto q = serving::step_work(c, w, hw);
    EXPECT_DOUBLE_EQ(q.kv_bytes, bf.kv_bytes * ratio) << dtype;
    EXPECT_DOUBLE_EQ(q.memory.kv_cache_bytes, bf.memory.kv_cache_bytes * ratio) << dtype;
    EXPECT_NEAR(cache_read(q), cache_read(bf) * ratio, 1e-9 * cache_read(bf)) << dtype;
    EXPECT_DOUBLE_EQ(q.weight_bytes, bf.weight_bytes) << dtype;
  }
  w.kv_cache_dtype = "int4";
  EXPECT_NE(error_text([&] { serving::step_work(c, w, hw); }).find("--kv-cache-dtype: unknown key/value-cache dtype 'int4'"),
            std::string::npos);
}

// --weights on the trees every command builds: the quantized Linear weights of the layers carry
// their format's bytes (scales included) in both byte counts, their products keep their FLOPs,
// the dequantize work is recorded on the Linear, and everything else stays in the dtype.
TEST(QuantizedTrees, WeightsCountTheirFormatsBytesAndKeepTheFlops) {
  const ModelConfig c = load_model_config("meta-llama/Llama-2-7b-hf");
  const std::string q = "model.layers.3.self_attn.q_proj:Linear";
  const auto step = [&](const char* weights) {
    BuildOptions o = make_build_options("decode", "512", "bfloat16", "", "", false, weights);
    return build_tree(c, 1, 1, o);
  };
  const Tree same = step("same"), fp8 = step("fp8"), mxfp4 = step("mxfp4"), int4 = step("int4");
  const auto node = [](const Tree& t, const std::string& id) -> const Node& { return t.nodes.at(t.find_id(id)); };
  const double activations = (4096.0 + 4096.0) * 2;  // one row in, one row out, bfloat16
  const auto weight_bytes = [&](const Tree& t) { return primitive_traffic(node(t, q), 2) - activations; };
  EXPECT_DOUBLE_EQ(weight_bytes(same), 4096.0 * 4096 * 2);
  EXPECT_DOUBLE_EQ(weight_bytes(fp8), 4096.0 * 4096 + 4.0 * 32 * 32);        // e4m3 + float32 per 128 x 128
  EXPECT_DOUBLE_EQ(weight_bytes(mxfp4), 4096.0 * 4096 * 0.5 + 4096.0 * 128);  // + one byte per 32
  EXPECT_DOUBLE_EQ(weight_bytes(int4), 4096.0 * 4096 * 0.5 + 2.5 * 4096 * 32);
  // The dataset's byte count (weight per sequence) moves by the same bytes at batch 1.
  EXPECT_NEAR((node(same, q).mem_mib - node(fp8, q).mem_mib) * 1048576.0, weight_bytes(same) - weight_bytes(fp8), 1);
  for (const Tree* t : {&fp8, &mxfp4, &int4}) {
    EXPECT_EQ(node(*t, q).flops_mflop, node(same, q).flops_mflop) << t->weights;
    EXPECT_EQ(t->root().num_parameters, same.root().num_parameters);
    EXPECT_LT(t->root().mem_mib, same.root().mem_mib);
    // Embeddings and the LM head stay in bfloat16.
    EXPECT_EQ(node(*t, "lm_head:Linear").mem_mib, node(same, "lm_head:Linear").mem_mib);
    EXPECT_EQ(node(*t, "lm_head:Linear").attrs.count("weight_format"), 0u);
  }
  EXPECT_EQ(node(fp8, q).attrs.at("dequantize_ops"), 4096 * 32);  // one scale per output per block of 128
  EXPECT_EQ(node(mxfp4, q).attrs.at("dequantize_ops"), 4096 * 4096);
  EXPECT_EQ(node(int4, q).attrs.at("dequantize_ops"), 2 * 4096 * 4096);
  EXPECT_EQ(same.weights, "");
  EXPECT_EQ(fp8.weights, "fp8");
  EXPECT_NE(fp8.key(), same.key());
  EXPECT_NE(describe_pass(fp8).find("weights fp8"), std::string::npos);
  // Every quantized weight of the model: fp8 half of bfloat16's bytes plus the scales, mxfp4 about
  // a quarter (0.53125 / 2); nothing else moves.
  const auto weights_of = [&](const Tree& t) {
    double quantized = 0, rest = 0;
    for (const Node& n : t.nodes) {
      if (!n.is_leaf()) continue;
      const Node& s = same.nodes.at(same.find_id(n.id));
      if (n.attrs.count("weight_format")) {
        const double rows = n.attrs.at("batch") * n.attrs.at("seq");
        const double act = rows * (n.attrs.at("in_features") + n.attrs.at("out_features")) * 2;
        quantized += (primitive_traffic(n, 2) - act) / (primitive_traffic(s, 2) - act);
      } else {
        rest += std::abs(primitive_traffic(n, 2) - primitive_traffic(s, 2));
      }
    }
    return std::pair{quantized / (32 * 7), rest};
  };
  EXPECT_NEAR(weights_of(fp8).first, 0.5 + 2.0 / (128 * 128), 1e-4);
  EXPECT_NEAR(weights_of(mxfp4).first, 0.53125 / 2, 1e-4);
  EXPECT_EQ(weights_of(fp8).second, 0);
  EXPECT_EQ(weights_of(mxfp4).second, 0);
}

TEST(QuantizedTrees, TheConfigsQuantizationConfigAppliesUnlessWeightsSaysOtherwise) {
  // DeepSeek-V3 ships fp8 with 128 x 128 blocks: its tree counts them; its router and head do not.
  const ModelConfig ds = serving::load_serving_model("deepseek-ai/DeepSeek-V3");
  const Tree t = build_tree(ds, 1, 1, make_build_options("decode", "64", "bfloat16"));
  EXPECT_EQ(t.weights, "fp8");
  EXPECT_EQ(t.provenance.at("config_quantization"), "fp8");
  const auto attrs = [&](const Tree& x, const std::string& id) { return x.nodes.at(x.find_id(id)).attrs; };
  EXPECT_EQ(attrs(t, "model.layers.4.mlp.experts.gate_proj:Linear").at("weight_format"), 1);
  EXPECT_EQ(attrs(t, "model.layers.4.mlp.experts.gate_proj:Linear").at("weight_block"), 128);
  EXPECT_EQ(attrs(t, "model.layers.4.self_attn.kv_b_proj:Linear").at("weight_format"), 1);
  EXPECT_EQ(attrs(t, "model.layers.4.mlp.gate:Linear").count("weight_format"), 0u);
  EXPECT_EQ(attrs(t, "lm_head:Linear").count("weight_format"), 0u);
  const Tree plain = build_tree(ds, 1, 1, make_build_options("decode", "64", "bfloat16", "", "", false, "same"));
  EXPECT_EQ(plain.weights, "");
  EXPECT_LT(t.root().mem_mib, 0.6 * plain.root().mem_mib);
  // gpt-oss ships mxfp4 for its experts only (modules_to_not_convert: attention, router, embeddings, head).
  const Tree oss = build_tree(load_model_config("openai/gpt-oss-20b"), 1, 4, make_build_options("", "", "bfloat16"));
  EXPECT_EQ(oss.weights, "mxfp4");
  EXPECT_EQ(attrs(oss, "model.layers.0.mlp.experts.gate_up_proj:Linear").at("weight_format"), 2);
  EXPECT_EQ(attrs(oss, "model.layers.0.self_attn.q_proj:Linear").count("weight_format"), 0u);
  EXPECT_EQ(attrs(oss, "model.layers.0.mlp.router:Linear").count("weight_format"), 0u);
  // Asked for int4, a Llama counts int4 with the default group of 128.
  const Tree l = build_tree(load_model_config("meta-llama/Llama-2-7b-hf"), 1, 4,
                            make_build_options("", "", "", "", "", false, "int4"));
  EXPECT_EQ(attrs(l, "model.layers.0.mlp.down_proj:Linear").at("weight_block"), 128);
}

TEST(QuantizedTrees, WeightsRoundTripAndBadValuesAreOneLine) {
  const Tree t = build_tree(load_model_config("gpt2"), 1, 8, make_build_options("", "", "", "", "", false, "int8"));
  EXPECT_EQ(t.weights, "int8");
  const auto dir = std::filesystem::temp_directory_path() / ("irene-weights-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  write_jsonl(dir / "t.jsonl", {t});
  const Tree back = read_jsonl(dir / "t.jsonl").front();
  EXPECT_EQ(back.weights, "int8");
  EXPECT_EQ(back.key(), t.key());
  EXPECT_EQ(back.root().mem_mib, t.root().mem_mib);
  {
    std::ifstream in(dir / "t.jsonl");
    std::string line;
    std::getline(in, line);
    const auto at = line.find(R"("weights":"int8")");
    ASSERT_NE(at, std::string::npos) << line.substr(0, 200);
    line.replace(at, 16, R"("weights":"fp3")");
    std::ofstream(dir / "bad.jsonl") << line << "\n";
  }
  const std::string e = error_text([&] { read_jsonl(dir / "bad.jsonl"); });
  EXPECT_NE(e.find("field 'weights' must be fp8, mxfp4, int8 or int4, got 'fp3'"), std::string::npos) << e;
  std::filesystem::remove_all(dir);
  EXPECT_NE(error_text([] { make_build_options("", "", "", "", "", false, "fp3"); })
                .find("--weights: unknown weight format 'fp3': expected same-as-dtype, fp8, mxfp4, int8 or int4"),
            std::string::npos);
  EXPECT_NE(error_text([] { make_build_options("", "", "int8"); })
                .find("(activations are floating point; --weights int8 quantizes the weights)"),
            std::string::npos);
  Attrs a{{"in_features", 8}, {"out_features", 8}, {"weight_format", 9}};
  EXPECT_NE(error_text([&] { linear_weight_element_bytes(a, 2); }).find("attr 'weight_format' must be 0"),
            std::string::npos);
}

namespace {

// Bytes a decode step's cache work moves, from the tree's own counts: root mem in bytes.
double root_bytes(const Tree& t) { return t.root().mem_mib * 1048576.0; }

Tree decode_step(const char* model, int batch, const char* past, const char* dtype, const char* kv,
                 const char* attention = "") {
  return build_tree(load_model_config(model), batch, 1, make_build_options("decode", past, dtype, attention, "", false, "", kv));
}

}  // namespace

// --kv-cache-dtype on the trees every command builds. Llama-2-7b has as many key/value heads as
// heads (no repeat_kv): its attention reads the cache itself. Per layer an fp8 cache instead of
// bfloat16 saves one byte per cached element in each of the two cache_cat (read and written: 2 x
// 2 x b h t d) and in the two MatMul operands that are the cache (2 x b h t d): 6 b h t d bytes.
TEST(KvCacheTrees, AnFp8CacheSavesExactlyTheCachedBytesAndKeepsTheFlops) {
  const int b = 4, past = 1000, t = past + 1, h = 32, d = 128, layers = 32;
  const Tree bf = decode_step("meta-llama/Llama-2-7b-hf", b, "1000", "bfloat16", "");
  const Tree fp8 = decode_step("meta-llama/Llama-2-7b-hf", b, "1000", "bfloat16", "fp8");
  const Tree f32 = decode_step("meta-llama/Llama-2-7b-hf", b, "1000", "bfloat16", "float32");
  const double per_byte = 6.0 * b * h * t * d * layers;  // bytes saved per byte of element size
  EXPECT_NEAR(root_bytes(bf) - root_bytes(fp8), per_byte, 1e-9 * root_bytes(bf));
  EXPECT_NEAR(root_bytes(f32) - root_bytes(bf), 2 * per_byte, 1e-9 * root_bytes(bf));
  // The physical traffic moves by the same bytes (every cached tensor is read or written once).
  EXPECT_NEAR(node_traffic(bf, bf.root()).bytes - node_traffic(fp8, fp8.root()).bytes, per_byte,
              1e-9 * root_bytes(bf));
  for (const Tree* x : {&fp8, &f32}) {
    EXPECT_EQ(x->root().flops_mflop, bf.root().flops_mflop) << x->kv_cache_dtype;
    EXPECT_EQ(x->root().num_parameters, bf.root().num_parameters);
    // Weights and activations are not the cache: the MLP and the projections are unchanged.
    for (const char* id : {"model.layers.7.mlp:LlamaMLP", "model.layers.7.self_attn.q_proj:Linear", "lm_head:Linear"})
      EXPECT_EQ(x->nodes.at(x->find_id(id)).mem_mib, bf.nodes.at(bf.find_id(id)).mem_mib) << id;
  }
  const Node& qk = fp8.nodes.at(fp8.find_id("model.layers.0.self_attn:MatMul#0"));
  EXPECT_EQ(qk.attrs.at("kv_bytes"), 1);
  EXPECT_EQ(bf.nodes.at(bf.find_id("model.layers.0.self_attn:MatMul#0")).attrs.count("kv_bytes"), 0u);
  EXPECT_EQ(fp8.kv_cache_dtype, "fp8");
  EXPECT_EQ(fp8.key(), "meta-llama/Llama-2-7b-hf/4/1/past1000/bfloat16/kv-fp8");
  EXPECT_NE(describe_pass(fp8).find("kv-cache fp8"), std::string::npos);
  // A cache in the dtype it would have anyway is the same tree.
  const Tree same = decode_step("meta-llama/Llama-2-7b-hf", b, "1000", "bfloat16", "bfloat16");
  EXPECT_EQ(same.kv_cache_dtype, "");
  EXPECT_EQ(same.key(), bf.key());
  EXPECT_EQ(same.root().mem_mib, bf.root().mem_mib);
}

// Grouped-query attention (Mistral-7B: 32 heads, 8 key/value heads) repeats the cache for every
// head (repeat_kv) and the attention reads the copy in the activations' dtype: an fp8 cache saves
// in the two cache_cat (2 x 2 n) and in repeat_kv's reads of the cache (2 x n), n = b kv t d; the
// MatMul leaves read the bfloat16 copy. The SDPA leaf of a model without repetition reads the
// cache itself (its keys and values: 2 b h t d).
TEST(KvCacheTrees, GroupedHeadsReadTheCacheThroughRepeatKvAndSdpaReadsItItself) {
  const int b = 2, t = 2049, kv = 8, d = 128, layers = 32;
  const Tree bf = decode_step("mistralai/Mistral-7B-v0.1", b, "2048", "bfloat16", "");
  const Tree fp8 = decode_step("mistralai/Mistral-7B-v0.1", b, "2048", "bfloat16", "fp8");
  EXPECT_NEAR(root_bytes(bf) - root_bytes(fp8), 6.0 * b * kv * t * d * layers, 1e-9 * root_bytes(bf));
  EXPECT_EQ(fp8.nodes.at(fp8.find_id("model.layers.0.self_attn:MatMul#0")).attrs.count("kv_bytes"), 0u);
  int repeats = 0;
  for (const Op& op : fp8.nodes.at(fp8.find_id("model.layers.0.self_attn:MistralAttention")).ops)
    if (op.kind == "repeat_kv" || op.kind == "cache_cat") {
      EXPECT_EQ(op.kv_bytes, 1) << op.kind;
      ++repeats;
    }
  EXPECT_EQ(repeats, 4);
  const Tree sb = decode_step("meta-llama/Llama-2-7b-hf", 1, "512", "float16", "", "sdpa");
  const Tree s8 = decode_step("meta-llama/Llama-2-7b-hf", 1, "512", "float16", "fp8", "sdpa");
  const Node& leaf = s8.nodes.at(s8.find_id("model.layers.0.self_attn:ScaledDotProductAttention"));
  const Node& leaf_bf = sb.nodes.at(sb.find_id("model.layers.0.self_attn:ScaledDotProductAttention"));
  EXPECT_EQ(leaf.attrs.at("kv_bytes"), 1);
  EXPECT_NEAR((leaf_bf.mem_mib - leaf.mem_mib) * 1048576.0, 2.0 * 32 * 513 * 128, 1e-6);
  EXPECT_EQ(leaf.flops_mflop, leaf_bf.flops_mflop);
}

// DeepSeek-V3's multi-head latent attention caches the latent and the rotary key: its cache_cat
// and the three products over the cache read them in the cache's dtype.
TEST(KvCacheTrees, LatentAttentionReadsItsLatentCacheInTheCachesDtype) {
  const ModelConfig c = serving::load_serving_model("deepseek-ai/DeepSeek-V3");
  const Tree bf = build_tree(c, 1, 1, make_build_options("decode", "4096", "bfloat16"));
  const Tree fp8 = build_tree(c, 1, 1, make_build_options("decode", "4096", "bfloat16", "", "", false, "", "fp8"));
  int cache_readers = 0;
  for (const Node& n : fp8.nodes)
    if (n.attrs.count("kv_bytes")) ++cache_readers;
  EXPECT_EQ(cache_readers, 3 * 61);
  // Per layer: 2 cache_cat of (512 + 64) x 4097 elements read and written, and the products read
  // 512 + 64 + 512 elements per position, one byte less each.
  const double per_layer = 2.0 * (512 + 64) * 4097 + (512.0 + 64 + 512) * 4097;
  EXPECT_NEAR(root_bytes(bf) - root_bytes(fp8), 61 * per_layer, 1e-9 * root_bytes(bf));
}

// A prefill stores its keys and values into a cache of another dtype (cache_store: read in the
// dtype, written in the cache's, one FLOP each); into a cache of its own dtype it stores nothing.
TEST(KvCacheTrees, APrefillStoresItsKeysAndValuesIntoACacheOfAnotherDtype) {
  const ModelConfig c = load_model_config("meta-llama/Llama-2-7b-hf");
  const Tree plain = build_tree(c, 2, 64, make_build_options("", "", "bfloat16"));
  const Tree fp8 = build_tree(c, 2, 64, make_build_options("", "", "bfloat16", "", "", false, "", "fp8"));
  const double n = 2.0 * 32 * 64 * 128 * 2 * 32;  // keys and values of every layer
  EXPECT_NEAR((fp8.root().flops_mflop - plain.root().flops_mflop) * 1e6, n, 1e-6 * n);
  EXPECT_NEAR(root_bytes(fp8) - root_bytes(plain), 3 * n, 1e-9 * root_bytes(plain));
  for (const Node& x : plain.nodes)
    for (const Op& op : x.ops) EXPECT_NE(op.kind, "cache_store");
  // gpt2 (eager MatMul over its own cache) too.
  const Tree g = build_tree(load_model_config("gpt2"), 1, 8, make_build_options("", "", "float16", "", "", false, "", "fp8"));
  const Tree gd = build_tree(load_model_config("gpt2"), 1, 1, make_build_options("decode", "8", "float16", "", "", false, "", "fp8"));
  EXPECT_EQ(g.kv_cache_dtype, "fp8");
  EXPECT_EQ(gd.nodes.at(gd.find_id("h.0.attn:MatMul#1")).attrs.at("kv_bytes"), 1);
}

// The cache's dtype survives a JSONL file; bad values are one line naming the field or attr.
TEST(KvCacheTrees, CacheDtypeRoundTripsAndBadValuesAreOneLine) {
  const Tree t = decode_step("meta-llama/Llama-2-7b-hf", 1, "64", "float32", "fp8");
  const auto dir = std::filesystem::temp_directory_path() / ("irene-kv-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  write_jsonl(dir / "t.jsonl", {t});
  const Tree back = read_jsonl(dir / "t.jsonl").front();
  EXPECT_EQ(back.kv_cache_dtype, "fp8");
  EXPECT_EQ(back.key(), t.key());
  ASSERT_EQ(back.nodes.size(), t.nodes.size());
  for (std::size_t i = 0; i < t.nodes.size(); ++i) {
    EXPECT_EQ(back.nodes[i].ops, t.nodes[i].ops) << t.nodes[i].id;
    EXPECT_EQ(back.nodes[i].attrs, t.nodes[i].attrs) << t.nodes[i].id;
  }
  Tree recounted = back;
  recount(recounted);
  EXPECT_DOUBLE_EQ(recounted.root().mem_mib, t.root().mem_mib);
  std::string line;
  {
    std::ifstream in(dir / "t.jsonl");
    std::getline(in, line);
  }
  const auto bad = [&](const std::string& from, const std::string& to) {
    std::string l = line;
    const auto at = l.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) l.replace(at, from.size(), to);
    std::ofstream(dir / "bad.jsonl") << l << "\n";
    return error_text([&] { read_jsonl(dir / "bad.jsonl"); });
  };
  EXPECT_NE(bad(R"("kv_cache_dtype":"fp8")", R"("kv_cache_dtype":"int4")")
                .find("field 'kv_cache_dtype' must be fp8, bfloat16, float16 or float32, got 'int4'"),
            std::string::npos);
  EXPECT_NE(bad(R"("kind":"cache_cat","kv_bytes":1)", R"("kind":"cache_cat","kv_bytes":9)").find("kv_bytes"),
            std::string::npos);
  std::filesystem::remove_all(dir);
  EXPECT_NE(error_text([] { count_op(Op{"add", {2, 2}, 1}); }).find("operation 'add' does not touch the key/value cache"),
            std::string::npos);
  Node m;
  m.type = NodeType::ml;
  m.class_name = "MatMul";
  m.attrs = {{"batch", 1}, {"heads", 1}, {"m", 1}, {"k", 4}, {"n", 4}, {"kv_bytes", 16}};
  EXPECT_NE(error_text([&] { primitive_counts(m, 2); }).find("attr 'kv_bytes' must be 1..8"), std::string::npos);
  EXPECT_NE(error_text([] { make_build_options("", "", "", "", "", false, "", "int4"); })
                .find("--kv-cache-dtype: unknown key/value-cache dtype 'int4'"),
            std::string::npos);
}
