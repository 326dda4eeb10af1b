// The Python module `irene` (its compiled part, irene._irene): irene's core through pybind11,
// without libtorch. Python sees plain objects (dicts, lists, floats, strings); every irene::Error
// raises irene.Error, a ValueError. Each function's Python signature (names, defaults) and doc are
// written here, once; python/irene/__init__.py re-exports them with the package's doc. This file
// converts arguments and results and calls one function of irene::api each; the keyword arguments
// are the command line's options, read from the same tables (explain/source.hpp).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "irene/arch/builder.hpp"
#include "irene/arch/config.hpp"
#include "irene/core/error.hpp"
#include "irene/explain/api.hpp"
#include "irene/explain/pipeline.hpp"
#include "irene/explain/source.hpp"
#include "irene/explain/sweep.hpp"
#include "irene/serving/request.hpp"

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

using irene::explain::Option;

std::string path_of(const py::handle& p) {
  return py::str(py::module_::import("os").attr("fspath")(p)).cast<std::string>();
}

// The model argument: a name or path (str or os.PathLike) into `what`, or a config dict.
void model_of(const py::object& model, std::string& what, std::optional<json>& config) {
  if (py::isinstance<py::dict>(model)) {
    config = from_python(model);
  } else if (py::isinstance<py::str>(model) || py::hasattr(model, "__fspath__")) {
    what = path_of(model);
  } else {
    throw irene::Error("model must be a name, a path to a config.json (or a trees .jsonl file), or a config dict");
  }
}

// The text the command line takes for a value: an int as "8", a list of ints (or strings) as
// "8,16" (a range list), a dict of numbers as "100:3,400:1" (a distribution of lengths: length to
// weight), a str (a range "32:512:32" too) or an os.PathLike as it is.
std::string text_of(const py::handle& v, const std::string& keyword) {
  auto bad = [&] {
    return irene::Error(fmt::format("{} must be a string, an integer or a list of integers, got {}", keyword,
                                    py::str(py::type::of(v).attr("__name__")).cast<std::string>()));
  };
  if (py::isinstance<py::bool_>(v)) throw bad();
  if (py::isinstance<py::str>(v)) return v.cast<std::string>();
  if (py::isinstance<py::int_>(v)) return py::str(v).cast<std::string>();
  if (py::isinstance<py::float_>(v)) return py::repr(v).cast<std::string>();
  if (py::hasattr(v, "__fspath__")) return path_of(v);
  if (py::isinstance<py::dict>(v)) {  // {length: weight}: a distribution, "100:3,400:1"
    const auto number = [](const py::handle& x) {
      return !py::isinstance<py::bool_>(x) && (py::isinstance<py::int_>(x) || py::isinstance<py::float_>(x));
    };
    std::string out;
    for (const auto& [k, x] : v.cast<py::dict>()) {
      if (!number(k) || !number(x))
        throw irene::Error(keyword + " as a dict must map lengths to weights (numbers), e.g. {100: 3, 400: 1}");
      out += (out.empty() ? "" : ",") + py::str(k).cast<std::string>() + ":" + py::str(x).cast<std::string>();
    }
    if (out.empty()) throw irene::Error(keyword + ": an empty dict");
    return out;
  }
  if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v) || py::isinstance<py::iterable>(v)) {
    std::string out;
    for (const auto& x : v) {
      if (py::isinstance<py::bool_>(x) || !(py::isinstance<py::int_>(x) || py::isinstance<py::str>(x))) throw bad();
      out += (out.empty() ? "" : ",") + py::str(x).cast<std::string>();
    }
    if (out.empty()) throw irene::Error(keyword + ": an empty list");
    return out;
  }
  throw bad();
}

// "KEY=VALUE" texts of overrides: a dict, one "k=v" string, or a list of them.
std::vector<std::string> overrides_of(const py::handle& v) {
  std::vector<std::string> out;
  if (py::isinstance<py::dict>(v)) {
    for (const auto& [k, x] : v.cast<py::dict>())
      out.push_back(py::str(k).cast<std::string>() + "=" + py::str(x).cast<std::string>());
  } else if (py::isinstance<py::str>(v)) {
    out.push_back(v.cast<std::string>());
  } else {
    for (const auto& item : v) out.push_back(py::str(item).cast<std::string>());
  }
  return out;
}

template <class T>
std::string keywords_of(const std::vector<Option<T>>& options) {
  return irene::explain::detail::keywords(options);
}

// Sets `target` from keyword arguments through the table of the command line's options
// (explain/source.hpp): each keyword the field of its option, None the default.
template <class T>
void apply(T& target, const std::vector<Option<T>>& options, const py::kwargs& kwargs, const std::string& fn) {
  for (const auto& [k, v] : kwargs) {
    const std::string key = py::str(k).cast<std::string>();
    const Option<T>* found = irene::explain::find_option(options, key);
    if (!found)
      throw irene::Error(fmt::format("{}() got an unknown keyword '{}' (accepted: {})", fn, key, keywords_of(options)));
    if (v.is_none()) continue;
    using Kind = typename Option<T>::Kind;
    switch (found->kind) {
      case Kind::text: found->text(target) = text_of(v, key); break;
      case Kind::list: found->list(target) = overrides_of(v); break;
      case Kind::flag:
        if (!py::isinstance<py::bool_>(v)) throw irene::Error(key + " must be True or False");
        found->flag(target) = v.template cast<bool>();
        break;
      case Kind::integer:
        if (py::isinstance<py::bool_>(v) || !py::isinstance<py::int_>(v)) throw irene::Error(key + " must be an integer");
        found->integer(target) = v.template cast<int>();
        break;
    }
  }
}

// The keyword arguments' lines of a function's doc, from the table.
template <class T>
std::string keywords_doc(const std::vector<Option<T>>& options) {
  std::string out = "\n\nKeyword arguments (the command line's options; None: the default):\n";
  for (const auto& o : options) {
    std::string name = o.keyword;
    for (const auto& a : o.aliases) name += " or " + a;
    out += fmt::format("    {} ({}): {}\n", name, o.flags.substr(0, o.flags.find(',')),
                       o.range_help.empty() ? o.help : o.range_help);
  }
  return out;
}

using irene::explain::CompareRequest;
using irene::explain::ExplainRequest;
using irene::explain::Source;

std::vector<Option<ExplainRequest>> request_options(bool with_top) {
  auto o = irene::explain::lift<ExplainRequest, Source>(irene::explain::source_options(),
                                                         [](ExplainRequest& r) -> Source& { return r.source; });
  for (const auto& e : irene::explain::explain_options())
    if (with_top || e.keyword != "top") o.push_back(e);
  return o;
}

const std::vector<Option<Source>>& tree_options() {
  static const auto o = irene::explain::only(
      irene::explain::source_options(),
      {"batch", "seq", "overrides", "phase", "past", "dtype", "weights", "kv_cache_dtype", "attention", "head", "allow_long"});
  return o;
}
const std::vector<Option<ExplainRequest>>& predict_options() {
  static const auto o = request_options(false);
  return o;
}
const std::vector<Option<ExplainRequest>>& explain_options() {
  static const auto o = request_options(true);
  return o;
}

using irene::serving::ServingRequest;

// The serving table's options but the model (the first argument).
const std::vector<Option<ServingRequest>>& serving_keywords() {
  static const auto o = [] {
    std::vector<Option<ServingRequest>> out;
    for (const auto& x : irene::serving::serving_options())
      if (x.keyword != "model") out.push_back(x);
    return out;
  }();
  return o;
}

ServingRequest serving_request(const py::object& model, const py::kwargs& kw, const std::string& fn) {
  ServingRequest q;
  if (!(py::isinstance<py::str>(model) || py::hasattr(model, "__fspath__")))
    throw irene::Error("model must be a name or a path to a config.json");
  q.model = path_of(model);
  apply(q, serving_keywords(), kw, fn);
  return q;
}

template <class F>
py::object released(F&& f) {
  json j;
  {
    py::gil_scoped_release release;
    j = f();
  }
  return to_python(j);
}

}  // namespace

PYBIND11_MODULE(_irene, m) {
  m.doc() = "irene's core (compiled part); use the irene package";
  py::register_exception<irene::Error>(m, "Error", PyExc_ValueError);
  m.attr("__version__") = IRENE_VERSION;
  m.def("models", [] { return irene::api::models(); }, "Names of the built-in model configurations.");
  m.def("tree", [](const py::object& model, const py::kwargs& kw) {
    Source s;
    model_of(model, s.what, s.config);
    apply(s, tree_options(), kw, "tree");
    return released([&] { return irene::api::tree(s); });
  },
        ("The model tree for ``batch`` sequences of ``seq`` tokens (default 8 and 128; 1 for a decode step):\n"
         "parameters, MFLOP and MiB per node, as ``irene tree``." + keywords_doc(tree_options())).c_str(),
        py::arg("model"));
  m.def("predict", [](const py::object& model, const py::kwargs& kw) {
    ExplainRequest r;
    model_of(model, r.source.what, r.source.config);
    apply(r, predict_options(), kw, "predict");
    return released([&] { return irene::api::predict(r); });
  },
        ("Predicted energy of every node (joules per forward pass) with its interval.\n\n"
         "Returns a dict: ``energy_j``, ``low_j``, ``high_j`` (the model), ``hardware`` (what the\n"
         "energies describe), ``dtype``, ``phase``, ``past_len``, ``stand_ins`` (leaves predicted by\n"
         "another class's regressor), totals, and ``nodes`` (flat records, see the module doc); a list\n"
         "of them for a trees file of several trees; with ``prompt`` and ``generate``: ``generate``'s\n"
         "result." + keywords_doc(predict_options())).c_str(),
        py::arg("model"));
  m.def("generate", [](const py::object& model, const py::kwargs& kw) {
    ExplainRequest r;
    model_of(model, r.source.what, r.source.config);
    apply(r, predict_options(), kw, "generate");
    if (r.source.prompt.empty()) r.source.prompt = "512";
    if (r.source.generate.empty()) r.source.generate = "256";
    return released([&] { return irene::api::generate(r); });
  },
        ("The energy of generating ``generate`` tokens (default 256) after a ``prompt``-token prompt\n"
         "(default 512), ``batch`` sequences (default 1), as ``irene predict --prompt P --generate N``.\n\n"
         "Returns a dict: ``prefill_j``, ``decode_j`` (the sum of the steps), ``total_j`` and\n"
         "``per_token_j`` (decode / (batch x generate)), each ``{\"j\", \"low_j\", \"high_j\"}`` in joules;\n"
         "``steps`` (``past``, ``energy_j``, ``low_j``, ``high_j`` for every decode step), ``by_kind``\n"
         "(attention, feed-forward, embeddings, norm, lm head, other over the whole generation),\n"
         "``stand_ins``, ``dtype``, ``hardware``, ``normalized`` (watt-hours, and grams CO2e with\n"
         "``carbon_intensity``); ``prefill_nodes`` and ``step_nodes``: the flat node records (the\n"
         "columns of ``predict``'s ``nodes``) of the prefill and of the last decode step." +
         keywords_doc(predict_options())).c_str(),
        py::arg("model"));
  m.def("explain", [](const py::object& model, const py::kwargs& kw) {
    py::kwargs rest;
    bool serving = false;
    for (const auto& [k, v] : kw) {
      if (py::str(k).cast<std::string>() != "serving") {
        rest[k] = v;
      } else if (!v.is_none()) {
        if (!py::isinstance<py::bool_>(v)) throw irene::Error("serving must be True or False");
        serving = v.cast<bool>();
      }
    }
    if (serving) {
      const ServingRequest q = serving_request(model, rest, "explain");
      return released([&] { return irene::serving::serving_explanation(q); });
    }
    // without serving=True, the serving keywords explain has no option of its own for apply only as None
    py::kwargs own;
    for (const auto& [k, v] : rest) {
      const std::string key = py::str(k).cast<std::string>();
      if (!irene::explain::find_option(explain_options(), key) && irene::explain::find_option(serving_keywords(), key)) {
        if (!v.is_none()) throw irene::Error(fmt::format("explain(): {} applies with serving=True only", key));
        continue;
      }
      own[k] = v;
    }
    ExplainRequest r;
    model_of(model, r.source.what, r.source.config);
    apply(r, explain_options(), own, "explain");
    return released([&] { return irene::api::to_json(irene::api::explain(r)); });
  },
        ("Where the energy goes: shares of every node, hotspots, energy by primitive type and module kind;\n"
         "the object ``irene explain --format json`` prints (a list for a trees file of several trees).\n"
         "With ``prompt`` and ``generate``: the generation with ``prefill_explanation`` and\n"
         "``last_step_explanation``. With ``serving=True``: where the joules of a serving step go, as\n"
         "``irene explain --serving --format json``: ``{\"serving\", \"parts\", \"points\", \"shares\"}``, each\n"
         "point's ``by_part`` adding up to its step; it then takes ``serving``'s keyword arguments." +
         keywords_doc(explain_options())).c_str(),
        py::arg("model"));
  m.def("serving", [](const py::object& model, const py::kwargs& kw) {
    const ServingRequest q = serving_request(model, kw, "serving");
    return released([&] { return irene::serving::serving_answer(q); });
  },
        ("Energy of serving a model with continuous batching on a named GPU (``hardware``), as\n"
         "``irene serving --format json``: energy per generated token and per request (joules, with\n"
         "intervals), mean power, inter-token latency, throughput, by module kind; with a list of\n"
         "``max_num_seqs`` (or ``prompt``, ``output``): ``{\"points\": [...]}``. The predictor is fitted on\n"
         "the measured serving table (``table``; default ../shared/llm-energy/mlenergy-v3-llm.csv or\n"
         "$IRENE_LLM_ENERGY)." + keywords_doc(serving_keywords())).c_str(),
        py::arg("model"));
  m.def("compare", [](const py::object& a, const py::object& b, const py::kwargs& kw) {
    CompareRequest r;
    model_of(a, r.a.what, r.a.config);
    if (!b.is_none()) model_of(b, r.b, r.config_b);
    apply(r, irene::explain::compare_options(), kw, "compare");
    return released([&] { return irene::api::to_json(irene::api::compare(r)); });
  },
        ("What a change costs: b against a, node by node, by module kind and by primitive type; the\n"
         "object ``irene compare --format json`` prints. ``b`` defaults to ``a`` (compare it with itself\n"
         "changed by ``overrides_b``, ``batch_b``, ``dtype_b`` ...). With ``prompt`` and ``generate``: the\n"
         "two generations, and their last decode steps node by node in ``last_step``." +
         keywords_doc(irene::explain::compare_options())).c_str(),
        py::arg("a"), py::arg("b") = py::none());
  m.def("sweep", [](const py::object& model, const py::kwargs& kw) {
    irene::explain::SweepRequest r;
    Source& s = r.source;
    model_of(model, s.what, s.config);
    apply(r, irene::explain::sweep_options(), kw, "sweep");
    const bool trees_file = !s.config && irene::explain::is_trees_file(s.what);
    if (s.seq.empty() && !s.generation() && !trees_file && s.pass.phase != irene::kDecode) s.seq = "32:512:32";
    return released([&] { return irene::api::to_json(irene::api::sweep(r)); });
  },
        ("Energy against batch size and sequence length (or past, or prompt and generated tokens).\n\n"
         "``batch``, ``seq``, ``past`` (with ``phase=\"decode\"``), ``prompt`` and ``generate`` are an int,\n"
         "a list of ints, or a range string (``\"32:512:32\"``, ``\"8,16,32\"``); ``seq`` defaults to\n"
         "``\"32:512:32\"``. Returns what ``irene sweep --format json`` prints: ``{\"model_name\",\n"
         "\"hardware\", \"rests_on\", \"points\": [...], \"carbon_intensity_g_per_kwh\"}``, one point per\n"
         "(batch, seq, past) or per (batch, prompt, generate), batch-major, each with ``co2e_g`` (with\n"
         "``carbon_intensity``; ``per_token_co2e_g`` too for generations) and its ``rests_on`` line." +
         keywords_doc(irene::explain::sweep_options())).c_str(),
        py::arg("model"));
}
