// The Python module `irene` (its compiled part, irene._irene): irene's core through pybind11,
// without libtorch. Python sees plain objects (dicts, lists, floats, strings); every irene::Error
// raises irene.Error, a ValueError. Each function's Python signature (names, defaults) and doc are
// written here, once; python/irene/__init__.py re-exports them with the package's doc. This file
// converts arguments and results and calls one function of irene::api each.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/api.hpp"
#include "irene/explain/sweep.hpp"

namespace py = pybind11;
using nlohmann::json;

namespace {

py::object to_python(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return py::none();
    case json::value_t::boolean: return py::bool_(j.get<bool>());
    case json::value_t::number_integer: return py::int_(j.get<std::int64_t>());
    case json::value_t::number_unsigned: return py::int_(j.get<std::uint64_t>());
    case json::value_t::number_float: return py::float_(j.get<double>());
    case json::value_t::string: return py::str(j.get_ref<const std::string&>());
    case json::value_t::array: {
      py::list l;
      for (const auto& v : j) l.append(to_python(v));
      return std::move(l);
    }
    case json::value_t::object: {
      py::dict d;
      for (const auto& [k, v] : j.items()) d[py::str(k)] = to_python(v);
      return std::move(d);
    }
    default: return py::none();
  }
}

json from_python(const py::handle& o, int depth = 0) {
  if (depth > 64) throw irene::Error("config: nested deeper than 64 levels");
  if (o.is_none()) return nullptr;
  if (py::isinstance<py::bool_>(o)) return o.cast<bool>();
  if (py::isinstance<py::int_>(o)) {
    try {
      return o.cast<std::int64_t>();
    } catch (const py::cast_error&) {
      throw irene::Error("config: an integer out of the 64-bit range");
    }
  }
  if (py::isinstance<py::float_>(o)) return o.cast<double>();
  if (py::isinstance<py::str>(o)) return o.cast<std::string>();
  if (py::isinstance<py::dict>(o)) {
    json j = json::object();
    for (const auto& [k, v] : o.cast<py::dict>()) j[py::str(k).cast<std::string>()] = from_python(v, depth + 1);
    return j;
  }
  if (py::isinstance<py::list>(o) || py::isinstance<py::tuple>(o)) {
    json j = json::array();
    for (const auto& v : o) j.push_back(from_python(v, depth + 1));
    return j;
  }
  throw irene::Error("config: values must be dicts, lists, strings, numbers, booleans or None");
}

// A model: a name / path (str or os.PathLike) or a config dict; overrides: a dict or "k=v" strings.
irene::api::ModelSpec spec_of(const py::object& model, const py::object& overrides) {
  irene::api::ModelSpec s;
  if (py::isinstance<py::dict>(model)) {
    s.config = from_python(model);
  } else if (py::isinstance<py::str>(model) || py::hasattr(model, "__fspath__")) {
    s.name_or_path = py::str(py::module_::import("os").attr("fspath")(model)).cast<std::string>();
  } else {
    throw irene::Error("model must be a name, a path to a config.json, or a config dict");
  }
  if (overrides.is_none()) return s;
  if (py::isinstance<py::dict>(overrides)) {
    for (const auto& [k, v] : overrides.cast<py::dict>())
      s.overrides.emplace_back(py::str(k).cast<std::string>(), py::str(v).cast<std::string>());
  } else {
    for (const auto& item : overrides) s.overrides.push_back(irene::parse_config_override(py::str(item).cast<std::string>()));
  }
  return s;
}

// The pass of a tree or generation (arch/builder.hpp): None or text per option, as --phase etc.
irene::BuildOptions pass_of(const py::object& phase, const py::object& past, const py::object& dtype,
                            const py::object& attention, const py::object& head, bool allow_long,
                            const py::object& weights, const py::object& kv_cache_dtype) {
  auto text = [](const py::object& o) { return o.is_none() ? std::string() : py::str(o).cast<std::string>(); };
  return irene::make_build_options(text(phase), text(past), text(dtype), text(attention), text(head), allow_long,
                                   text(weights), text(kv_cache_dtype));
}

std::string path_of(const py::object& p) {
  if (p.is_none()) return "";
  return py::str(py::module_::import("os").attr("fspath")(p)).cast<std::string>();
}

// An int, a list of ints, or a range string ("32:512:32", "8,16").
std::vector<int> values_of(const py::object& v, const char* what) {
  if (py::isinstance<py::bool_>(v)) throw irene::Error(std::string(what) + " must be an integer, a list or a range");
  if (py::isinstance<py::int_>(v)) return {v.cast<int>()};
  if (py::isinstance<py::str>(v)) return irene::explain::parse_range(v.cast<std::string>(), what);
  std::vector<int> out;
  for (const auto& x : v) {
    if (!py::isinstance<py::int_>(x) || py::isinstance<py::bool_>(x))
      throw irene::Error(std::string(what) + " values must be integers");
    out.push_back(x.cast<int>());
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_irene, m) {
  m.doc() = "irene's core (compiled part); use the irene package";
  py::register_exception<irene::Error>(m, "Error", PyExc_ValueError);
  m.attr("__version__") = IRENE_VERSION;
  m.def("models", [] { return irene::api::models(); }, "Names of the built-in model configurations.");
  m.def("tree", [](const py::object& model, int batch, const py::object& seq, const py::object& overrides,
                   const py::object& phase, const py::object& past, const py::object& dtype,
                   const py::object& attention, const py::object& head, bool allow_long, const py::object& weights,
                   const py::object& kv_cache_dtype) {
    const auto s = spec_of(model, overrides);
    const auto pass = pass_of(phase, past, dtype, attention, head, allow_long, weights, kv_cache_dtype);
    const int n = irene::pass_seq(seq.is_none() ? std::string() : py::str(seq).cast<std::string>(), pass);
    json j;
    {
      py::gil_scoped_release release;
      j = irene::api::tree(s, batch, n, pass);
    }
    return to_python(j);
  },
        "The model tree for ``batch`` sequences of ``seq`` tokens (default 128; 1 for a decode step):\n"
        "parameters, MFLOP and MiB per node. See the module doc for the pass options.",
        py::arg("model"), py::arg("batch") = 8, py::arg("seq") = py::none(), py::arg("overrides") = py::none(),
        py::arg("phase") = py::none(), py::arg("past") = py::none(), py::arg("dtype") = py::none(),
        py::arg("attention") = py::none(), py::arg("head") = py::none(), py::arg("allow_long") = false,
        py::arg("weights") = py::none(), py::arg("kv_cache_dtype") = py::none());
  m.def("predict", [](const py::object& model, int batch, const py::object& seq, const py::object& predictor,
                      const py::object& overrides, const py::object& phase, const py::object& past,
                      const py::object& dtype, const py::object& attention, const py::object& head, bool allow_long,
                      const py::object& weights, const py::object& kv_cache_dtype) {
    const auto s = spec_of(model, overrides);
    const auto p = path_of(predictor);
    const auto pass = pass_of(phase, past, dtype, attention, head, allow_long, weights, kv_cache_dtype);
    const int n = irene::pass_seq(seq.is_none() ? std::string() : py::str(seq).cast<std::string>(), pass);
    json j;
    {
      py::gil_scoped_release release;
      j = irene::api::predict(s, batch, n, p, pass);
    }
    return to_python(j);
  },
        "Predicted energy of every node (joules per forward pass) with its interval.\n\n"
        "Returns a dict: ``energy_j``, ``low_j``, ``high_j`` (the model), ``hardware`` (what the\n"
        "energies describe), ``dtype``, ``phase``, ``past_len``, ``stand_ins`` (leaves predicted by\n"
        "another class's regressor), totals, and ``nodes`` (flat records, see the module doc).",
        py::arg("model"), py::arg("batch") = 8, py::arg("seq") = py::none(), py::arg("predictor") = py::none(),
        py::arg("overrides") = py::none(), py::arg("phase") = py::none(), py::arg("past") = py::none(),
        py::arg("dtype") = py::none(), py::arg("attention") = py::none(), py::arg("head") = py::none(),
        py::arg("allow_long") = false, py::arg("weights") = py::none(), py::arg("kv_cache_dtype") = py::none());
  m.def("generate", [](const py::object& model, int batch, int prompt, int generate, const py::object& predictor,
                       const py::object& overrides, const py::object& dtype, const py::object& attention,
                       bool allow_long, const py::object& weights,
                   const py::object& kv_cache_dtype) {
    const auto s = spec_of(model, overrides);
    const auto p = path_of(predictor);
    const auto pass = pass_of(py::none(), py::none(), dtype, attention, py::none(), allow_long, weights, kv_cache_dtype);
    json j;
    {
      py::gil_scoped_release release;
      j = irene::api::generate(s, batch, prompt, generate, p, pass);
    }
    return to_python(j);
  },
        "The energy of generating ``generate`` tokens after a ``prompt``-token prompt, ``batch`` sequences.\n\n"
        "Returns a dict: ``prefill_j``, ``decode_j`` (the sum of the steps), ``total_j`` and\n"
        "``per_token_j`` (decode / (batch x generate)), each ``{\"j\", \"low_j\", \"high_j\"}`` in joules;\n"
        "``steps`` (``past``, ``energy_j``, ``low_j``, ``high_j`` for every decode step), ``by_kind``\n"
        "(attention, feed-forward, embeddings, norm, lm head, other over the whole generation),\n"
        "``stand_ins``, ``dtype``, ``hardware``.",
        py::arg("model"), py::arg("batch") = 1, py::arg("prompt") = 512, py::arg("generate") = 256,
        py::arg("predictor") = py::none(), py::arg("overrides") = py::none(), py::arg("dtype") = py::none(),
        py::arg("attention") = py::none(), py::arg("allow_long") = false, py::arg("weights") = py::none(),
        py::arg("kv_cache_dtype") = py::none());
  m.def("explain", [](const py::object& model, int batch, int seq, const py::object& predictor,
                      const py::object& overrides, int top) {
    const auto s = spec_of(model, overrides);
    const auto p = path_of(predictor);
    json j;
    {
      py::gil_scoped_release release;
      j = irene::api::explain(s, batch, seq, p, top);
    }
    return to_python(j);
  },
        "Where the energy goes: shares of every node, hotspots, energy by primitive type and module kind.",
        py::arg("model"), py::arg("batch") = 8, py::arg("seq") = 128, py::arg("predictor") = py::none(),
        py::arg("overrides") = py::none(), py::arg("top") = 10);
  m.def("compare", [](const py::object& a, const py::object& b, int batch, int seq, const py::object& batch_b,
                      const py::object& seq_b, const py::object& overrides_a, const py::object& overrides_b,
                      const py::object& predictor) {
    const auto sa = spec_of(a, overrides_a);
    const auto sb = spec_of(b.is_none() ? a : b, overrides_b);
    const int bb = batch_b.is_none() ? batch : batch_b.cast<int>();
    const int sq = seq_b.is_none() ? seq : seq_b.cast<int>();
    const auto p = path_of(predictor);
    json j;
    {
      py::gil_scoped_release release;
      j = irene::api::compare(sa, sb, batch, seq, bb, sq, p);
    }
    return to_python(j);
  },
        "What a change costs: b against a, node by node, by module kind and by primitive type.\n\n"
        "``b`` defaults to ``a`` (compare it with itself changed by ``overrides_b``, ``batch_b`` or ``seq_b``).",
        py::arg("a"), py::arg("b") = py::none(), py::arg("batch") = 8, py::arg("seq") = 128,
        py::arg("batch_b") = py::none(), py::arg("seq_b") = py::none(), py::arg("overrides_a") = py::none(),
        py::arg("overrides_b") = py::none(), py::arg("predictor") = py::none());
  m.def("sweep", [](const py::object& model, const py::object& batch, const py::object& seq,
                    const py::object& predictor, const py::object& overrides) {
    const auto s = spec_of(model, overrides);
    const auto batches = values_of(batch, "batch");
    const auto seqs = values_of(seq, "seq");
    const auto p = path_of(predictor);
    json j;
    {
      py::gil_scoped_release release;
      j = irene::api::sweep(s, batches, seqs, p);
    }
    return to_python(j);
  },
        "Energy against batch size and sequence length.\n\n"
        "``batch`` and ``seq`` are an int, a list of ints, or a range string (``\"32:512:32\"``,\n"
        "``\"8,16,32\"``). Returns ``{\"model_name\", \"hardware\", \"points\": [...]}``, one point per\n"
        "(batch, seq), batch-major.",
        py::arg("model"), py::arg("batch") = 8, py::arg("seq") = "32:512:32", py::arg("predictor") = py::none(),
        py::arg("overrides") = py::none());
}
