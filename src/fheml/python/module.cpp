// fheml._core: the one extension module. Marshalling only: arrays in and out, options parsed
// into the C++ structs, the GIL released around everything that computes. Errors are the C++
// library's: nanobind turns std::invalid_argument into ValueError with the same message.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/list.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/common/warnings.h"
#include "fheml/compiler/compile.h"
#include "fheml/deploy/deploy.h"
#include "fheml/models/linear_model.h"
#include "fheml/models/neural_network.h"
#include "fheml/models/onnx_import.h"
#include "fheml/models/tree_ensemble.h"
#include "fheml/python/bindings.h"
#include "fheml/python/model_bindings.h"
#include "fheml/runtime/statistics.h"

namespace nb = nanobind;
using namespace fheml;
using namespace fheml::python;

namespace fheml::python {

runtime::Mode parse_mode(const std::string& mode) {
  if (mode == "disable") return runtime::Mode::kDisable;
  if (mode == "simulate") return runtime::Mode::kSimulate;
  if (mode == "execute") return runtime::Mode::kExecute;
  throw std::invalid_argument("fhe must be 'disable', 'simulate' or 'execute', found '" + mode +
                              "'");
}

tfhe::SecurityLevel parse_security_level(int bits) {
  if (bits == 128) return tfhe::SecurityLevel::k128;
  if (bits == 132) return tfhe::SecurityLevel::k132;
  throw std::invalid_argument("security_level must be 128 or 132 (bits), found " +
                              std::to_string(bits));
}

// An int, so that a negative value is not wrapped by the conversion.
std::size_t parse_max_partitions(std::int64_t count) {
  if (count < 1 || count > static_cast<std::int64_t>(compiler::kMaxPartitions)) {
    throw std::invalid_argument(
        "max_partitions must be in 1.." + std::to_string(compiler::kMaxPartitions) +
        " (1: one parameter set for the whole circuit), found " + std::to_string(count));
  }
  return static_cast<std::size_t>(count);
}

quant::NBits parse_n_bits(const std::map<std::string, std::int64_t>& roles) {
  quant::NBits bits;
  for (const auto& [role, value] : roles) {
    if (value < 0 || value > 64) {
      throw std::invalid_argument("n_bits." + role + " must be in 2..16, found " +
                                  std::to_string(value));
    }
    const auto v = static_cast<std::uint32_t>(value);
    if (role == "model_inputs") {
      bits.model_inputs = v;
    } else if (role == "op_inputs") {
      bits.op_inputs = v;
    } else if (role == "op_weights") {
      bits.op_weights = v;
    } else if (role == "model_outputs") {
      bits.model_outputs = v;
    } else {
      throw std::invalid_argument("n_bits: unknown role '" + role +
                                  "' (roles: model_inputs, op_inputs, op_weights, model_outputs)");
    }
  }
  return bits;
}

nb::dict statistics_of(const runtime::FheCircuit& fhe) {
  const runtime::Statistics s = fhe.statistics();
  const compiler::Circuit& c = fhe.circuit();
  nb::dict d;
  d["bootstraps"] = s.bootstraps;
  d["linear_ops"] = s.linear_ops;
  d["max_bit_width"] = s.max_bit_width;
  d["max_width"] = s.max_width;
  d["max_lookup_bits"] = s.max_lookup_bits;
  d["polynomial_size"] = c.parameters.polynomial_size.value;
  d["glwe_dimension"] = c.parameters.glwe_dimension.value;
  d["lwe_dimension"] = c.parameters.lwe_dimension.value;
  d["parameters"] = tfhe::describe(c.parameters);
  // One parameter set per partition of the lookups (the first is "parameters"), and how many
  // bootstraps of a sample each runs.
  nb::list partitions;
  for (const tfhe::PbsParameters& p : runtime::partition_parameters(c))
    partitions.append(tfhe::describe(p));
  d["partitions"] = partitions;
  nb::list per_partition;
  for (const std::size_t b : s.bootstraps_per_partition) per_partition.append(b);
  d["bootstraps_per_partition"] = per_partition;
  // The cost model's latency of one sample on one thread (runtime::Statistics).
  d["estimated_latency_ms"] = s.estimated_latency_ms;
  d["log2_p_error"] = c.log2_p_error;  // the per-lookup bound the parameters meet
  d["global_p_error"] = c.global_p_error;
  d["output_noise_bits"] = c.output_noise_bits;  // 0: exact outputs
  int security = static_cast<int>(tfhe::achieved_security(c.parameters));
  for (const tfhe::PbsParameters& p : runtime::partition_parameters(c))
    security = std::min(security, static_cast<int>(tfhe::achieved_security(p)));
  d["security_bits"] = security;  // the least of the partitions' (each has its own keys)
  d["profile"] = compiler::meets_ind_cpa_d(c) ? "ind-cpa-d" : "standard";
  // The client's secret keys: k*N binary coefficients, plus n per partition with lookups (the
  // small keys of partitions 1.. derive from the first two).
  std::size_t secret_bits = c.parameters.glwe_dimension.value * c.parameters.polynomial_size.value;
  if (c.has_lookups) {
    for (const tfhe::PbsParameters& p : runtime::partition_parameters(c))
      secret_bits += p.lwe_dimension.value;
  }
  d["secret_key_bits"] = secret_bits;
  d["evaluation_key_bytes"] = s.key_sizes.keyswitch_compressed + s.key_sizes.bootstrap_compressed;
  d["evaluation_key_bytes_server"] = s.key_sizes.keyswitch_expanded + s.key_sizes.bootstrap_fourier;
  d["input_bytes"] = s.input_bytes;
  d["output_bytes"] = s.output_bytes;
  d["threads"] = s.threads;
  if (s.last_run) {
    nb::dict t;
    t["mode"] = std::string(runtime::mode_name(s.last_run->mode));
    t["samples"] = s.last_run->samples;
    t["keygen_s"] = s.last_run->keygen_s;
    t["encrypt_s"] = s.last_run->encrypt_s;
    t["run_s"] = s.last_run->run_s;
    t["decrypt_s"] = s.last_run->decrypt_s;
    d["last_run"] = t;
  }
  return d;
}

}  // namespace fheml::python

namespace {

class PyLinearModel : public PyModel<models::LinearModel> {
 public:
  PyLinearModel(const InMatrix& coef, const InVector& intercept, const std::string& link,
                const InMatrix& calibration, const std::map<std::string, std::int64_t>& n_bits,
                std::optional<double> p_error, std::optional<double> global_p_error,
                bool per_tensor_inputs, bool optimize_rounding, unsigned threads,
                const std::string& out_of_range, int security_level, const std::string& profile) {
    models::LinearModelOptions options;
    options.runtime.out_of_range = quant::parse_out_of_range(out_of_range);
    options.compile.search.security = parse_security_level(security_level);
    options.compile.profile = compiler::parse_profile(profile);
    options.compile.quantization.n_bits = parse_n_bits(n_bits);
    options.compile.p_error = p_error;
    options.compile.global_p_error = global_p_error;
    options.per_tensor_inputs = per_tensor_inputs;
    options.optimize_rounding = optimize_rounding;
    options.runtime.threads = threads;
    const models::Matrix w = to_matrix(coef);
    const std::vector<double> b(intercept.data(), intercept.data() + intercept.shape(0));
    const models::Link l = models::parse_link(link);
    const models::Matrix rows = to_matrix(calibration);
    nb::gil_scoped_release release;
    model_.emplace(w, b, l, rows, options);
  }

  OutMatrix<double> coef() const {
    models::Matrix c = model_->coef();
    return to_numpy(std::move(c));
  }
};

using InIntVector = nb::ndarray<const std::int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// Trees as flat arrays (what fheml's Python adapters read from scikit-learn, XGBoost and
// LightGBM): node n of tree t is row tree_offsets[t] + n; children are indices within the tree;
// feature -1 marks a leaf, whose row of `value` holds its outputs.
models::TreeEnsembleSpec tree_spec(std::size_t features, const InIntVector& tree_offsets,
                                   const InIntVector& feature, const InVector& threshold,
                                   const InIntVector& left, const InIntVector& right,
                                   const InMatrix& value, const std::string& split,
                                   const std::string& aggregation, const InVector& base_score,
                                   const std::string& link) {
  const std::size_t nodes = feature.shape(0);
  if (threshold.shape(0) != nodes || left.shape(0) != nodes || right.shape(0) != nodes ||
      value.shape(0) != nodes) {
    throw std::invalid_argument(
        "tree arrays: feature, threshold, left, right and value need one "
        "row per node");
  }
  if (tree_offsets.shape(0) < 2) throw std::invalid_argument("tree_offsets: no tree");
  models::TreeEnsembleSpec spec;
  spec.features = features;
  spec.outputs = value.shape(1);
  if (split == "<=") {
    spec.split = models::SplitRule::kLessEqual;
  } else if (split == "<") {
    spec.split = models::SplitRule::kLess;
  } else {
    throw std::invalid_argument("split must be '<=' or '<', found '" + split + "'");
  }
  if (aggregation == "sum") {
    spec.aggregation = models::Aggregation::kSum;
  } else if (aggregation == "mean") {
    spec.aggregation = models::Aggregation::kMean;
  } else {
    throw std::invalid_argument("aggregation must be 'sum' or 'mean', found '" + aggregation + "'");
  }
  spec.base_score.assign(base_score.data(), base_score.data() + base_score.shape(0));
  spec.link = models::parse_link(link);
  for (std::size_t t = 0; t + 1 < tree_offsets.shape(0); ++t) {
    const std::int64_t begin = tree_offsets(t), end = tree_offsets(t + 1);
    if (begin < 0 || end < begin || static_cast<std::size_t>(end) > nodes) {
      throw std::invalid_argument("tree_offsets[" + std::to_string(t) + "] out of order or range");
    }
    models::Tree tree;
    for (std::int64_t i = begin; i < end; ++i) {
      const auto r = static_cast<std::size_t>(i);
      models::TreeNode node;
      const auto narrow = [&](std::int64_t v, const char* what) {
        if (v < -1 || v > std::numeric_limits<std::int32_t>::max())
          throw std::invalid_argument(std::string(what) + " out of range in tree " +
                                      std::to_string(t));
        return static_cast<std::int32_t>(v);
      };
      node.feature = narrow(feature(r), "feature");
      if (node.feature == models::TreeNode::kLeaf) {
        node.value.assign(value.data() + r * spec.outputs, value.data() + (r + 1) * spec.outputs);
      } else {
        node.threshold = threshold(r);
        node.left = narrow(left(r), "left child");
        node.right = narrow(right(r), "right child");
      }
      tree.nodes.push_back(std::move(node));
    }
    spec.trees.push_back(std::move(tree));
  }
  return spec;
}

class PyTreeEnsemble : public PyModel<models::TreeEnsemble> {
 public:
  PyTreeEnsemble(std::size_t features, const InIntVector& tree_offsets, const InIntVector& feature,
                 const InVector& threshold, const InIntVector& left, const InIntVector& right,
                 const InMatrix& value, const std::string& split, const std::string& aggregation,
                 const InVector& base_score, const std::string& link, const InMatrix& calibration,
                 unsigned n_bits, unsigned leaf_bits, unsigned max_lookup_bits,
                 std::optional<double> p_error, std::optional<double> global_p_error,
                 unsigned threads, int security_level, const std::string& profile,
                 std::int64_t max_partitions) {
    const models::TreeEnsembleSpec spec =
        tree_spec(features, tree_offsets, feature, threshold, left, right, value, split,
                  aggregation, base_score, link);
    models::TreeEnsembleOptions options;
    options.n_bits = n_bits;
    options.leaf_bits = leaf_bits;
    options.max_lookup_bits = max_lookup_bits;
    options.compile.p_error = p_error;
    options.compile.global_p_error = global_p_error;
    options.compile.search.security = parse_security_level(security_level);
    options.compile.profile = compiler::parse_profile(profile);
    options.compile.max_partitions = parse_max_partitions(max_partitions);
    options.runtime.threads = threads;
    const models::Matrix rows = to_matrix(calibration);
    nb::gil_scoped_release release;
    model_.emplace(spec, rows, options);
  }

  OutMatrix<double> float_decision_function(const InMatrix& x) const {
    return to_numpy(model_->float_decision_function(to_matrix(x)));
  }

  nb::dict tree_statistics() const {
    const models::TreeCircuitStats& s = model_->stats();
    nb::dict d;
    d["trees"] = s.trees;
    d["internal_nodes"] = s.internal_nodes;
    d["leaves"] = s.leaves;
    d["distinct_splits"] = s.distinct_splits;
    d["lookups"] = s.lookups;
    d["lookup_bits"] = s.lookup_bits;
    d["leaf_bits"] = s.leaf_bits;
    d["value_blocks"] = s.value_blocks;
    d["reach_indicators"] = s.reach_indicators;
    d["lookup_depth"] = s.lookup_depth;
    d["concrete_ml_bootstraps"] = s.concrete_ml_bootstraps();
    return d;
  }

  std::string to_text() const { return models::to_text(model_->spec()); }
};

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "fheml's C++ core: models compiled to TFHE circuits (use fheml.sklearn)";
  m.attr("__version__") = "0.1.0";

  // fheml::warn -> a Python warning of fheml's own category, so that `warnings` filters apply
  // (an "error" filter makes it an exception of the call that warned: python_error carries it
  // through the C++ frames to nanobind, which restores it).
  fheml::set_warning_handler([](fheml::WarningKind kind, const std::string& message) {
    nb::gil_scoped_acquire gil;
    const char* name =
        kind == fheml::WarningKind::kInputRange ? "InputRangeWarning" : "KeyPermissionWarning";
    const nb::object category = nb::module_::import_("fheml._warnings").attr(name);
    if (PyErr_WarnEx(category.ptr(), message.c_str(), 2) != 0) throw nb::python_error();
  });

  nb::class_<PyLinearModel> linear(
      m, "LinearModel",
      "x @ coef + intercept quantized and compiled to a TFHE circuit without bootstrap; the link "
      "(sigmoid, softmax, exp...) runs on the client after decryption.");
  linear
      .def(nb::init<const InMatrix&, const InVector&, const std::string&, const InMatrix&,
                    const std::map<std::string, std::int64_t>&, std::optional<double>,
                    std::optional<double>, bool, bool, unsigned, const std::string&, int,
                    const std::string&>(),
           nb::arg("coef"), nb::arg("intercept"), nb::arg("link"), nb::arg("calibration"),
           nb::arg("n_bits"), nb::arg("p_error").none() = nb::none(),
           nb::arg("global_p_error").none() = nb::none(), nb::arg("per_tensor_inputs") = false,
           nb::arg("optimize_rounding") = true, nb::arg("threads") = 0,
           nb::arg("out_of_range") = "warn", nb::arg("security_level") = 128,
           nb::arg("profile") = "standard",
           "coef [F, C], intercept [C], calibration rows [N, F] (their ranges calibrate the "
           "inputs; optimize_rounding rounds the weights with error feedback on them); n_bits "
           "per role. Raises ValueError when the model cannot be compiled.")
      .def_prop_ro("coef", &PyLinearModel::coef, nb::rv_policy::move,
                   "Weights [F, C] on the quantizer's grid (after optimized rounding).");
  def_model_methods(linear);

  nb::class_<PyTreeEnsemble> trees(
      m, "TreeEnsemble",
      "Decision trees, forests and boosted ensembles compiled to a TFHE circuit: inputs as "
      "thermometer codes (splits cost no bootstrap), one lookup per block of leaves, the sum over "
      "trees encrypted; the link runs on the client.");
  trees
      .def(nb::init<std::size_t, const InIntVector&, const InIntVector&, const InVector&,
                    const InIntVector&, const InIntVector&, const InMatrix&, const std::string&,
                    const std::string&, const InVector&, const std::string&, const InMatrix&,
                    unsigned, unsigned, unsigned, std::optional<double>, std::optional<double>,
                    unsigned, int, const std::string&, std::int64_t>(),
           nb::arg("features"), nb::arg("tree_offsets"), nb::arg("feature"), nb::arg("threshold"),
           nb::arg("left"), nb::arg("right"), nb::arg("value"), nb::arg("split"),
           nb::arg("aggregation"), nb::arg("base_score"), nb::arg("link"), nb::arg("calibration"),
           nb::arg("n_bits") = 6, nb::arg("leaf_bits") = 8, nb::arg("max_lookup_bits") = 4,
           nb::arg("p_error").none() = nb::none(), nb::arg("global_p_error").none() = nb::none(),
           nb::arg("threads") = 0, nb::arg("security_level") = 128, nb::arg("profile") = "standard",
           nb::arg("max_partitions") = 3,
           "Flat tree arrays (node n of tree t at row tree_offsets[t] + n; feature -1 marks a "
           "leaf), split '<=' or '<', aggregation 'sum' or 'mean', calibration rows [N, F]. "
           "Raises ValueError on a malformed ensemble or when it cannot be compiled.")
      .def("float_decision_function", &PyTreeEnsemble::float_decision_function, nb::arg("x"),
           "The float trees on rows [N, F] (no quantization), before the link.")
      .def("tree_statistics", &PyTreeEnsemble::tree_statistics,
           "Trees, nodes, leaves, lookups per row and their width, Concrete ML's count.")
      .def("to_text", &PyTreeEnsemble::to_text, "The ensemble in fheml's text form.");
  def_model_methods(trees);

  python::register_networks(m);
  python::register_deploy(m);
}
