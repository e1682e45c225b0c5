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
#include "fheml/runtime/statistics.h"

namespace nb = nanobind;
using namespace fheml;
using namespace fheml::python;

namespace {

runtime::Mode parse_mode(const std::string& mode) {
  if (mode == "disable") return runtime::Mode::kDisable;
  if (mode == "simulate") return runtime::Mode::kSimulate;
  if (mode == "execute") return runtime::Mode::kExecute;
  throw std::invalid_argument("fhe must be 'disable', 'simulate' or 'execute', found '" + mode +
                              "'");
}

// n_bits as Concrete ML's dict: {"model_inputs": 8, "op_weights": 8, ...}; missing roles keep
// the defaults. Range checks are the quantizer's (its message names the role).
// 128 or 132 (tfhe::SecurityLevel); ValueError otherwise.
tfhe::SecurityLevel parse_security_level(int bits) {
  if (bits == 128) return tfhe::SecurityLevel::k128;
  if (bits == 132) return tfhe::SecurityLevel::k132;
  throw std::invalid_argument("security_level must be 128 or 132 (bits), found " +
                              std::to_string(bits));
}

// max_partitions: 1..compiler::kMaxPartitions (the compiler's message otherwise; an int here so
// that a negative value is not wrapped by the conversion).
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

// What a data scientist asks about a compiled model: sizes, precision, parameters, timings.
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

// What every compiled model offers Python: the modes, the client's steps one by one, keys,
// reports and deployment artifacts. Model is a models:: builder with decision_function,
// quantize_input, run_integers, dequantize_output, circuit(), link(), features(), outputs().
template <class Model>
class PyModel {
 public:
  OutMatrix<double> decision_function(const InMatrix& x, const std::string& fhe) {
    const runtime::Mode mode = parse_mode(fhe);
    models::Matrix rows = to_matrix(x);
    models::Matrix out;
    {
      nb::gil_scoped_release release;
      out = model_->decision_function(rows, mode);
    }
    return to_numpy(std::move(out));
  }

  OutMatrix<double> post_processing(const InMatrix& decision) const {
    return to_numpy(models::apply_link(model_->link(), to_matrix(decision)));
  }

  OutMatrix<std::int64_t> quantize_input(const InMatrix& x) const {
    const models::Matrix rows = to_matrix(x);
    return to_numpy(model_->quantize_input(rows), rows.rows, model_->features());
  }

  OutMatrix<std::int64_t> run_integers(const InIntMatrix& q, const std::string& fhe) {
    const runtime::Mode mode = parse_mode(fhe);
    const std::size_t rows = q.shape(0);
    if (q.shape(1) != model_->features()) {
      throw std::invalid_argument("quantized input has " + std::to_string(q.shape(1)) +
                                  " columns, the model " + std::to_string(model_->features()) +
                                  " features");
    }
    const std::vector<std::int64_t> in(q.data(), q.data() + rows * q.shape(1));
    std::vector<std::int64_t> out;
    {
      nb::gil_scoped_release release;
      out = model_->run_integers(in, rows, mode);
    }
    return to_numpy(std::move(out), rows, model_->outputs());
  }

  OutMatrix<double> dequantize_output(const InIntMatrix& q) const {
    if (q.shape(1) != model_->outputs()) {
      throw std::invalid_argument("quantized output has " + std::to_string(q.shape(1)) +
                                  " columns, the model " + std::to_string(model_->outputs()) +
                                  " outputs");
    }
    const std::size_t n = q.shape(0) * q.shape(1);
    return to_numpy(
        model_->dequantize_output(std::vector<std::int64_t>(q.data(), q.data() + n), q.shape(0)));
  }

  void keygen() {
    nb::gil_scoped_release release;
    model_->circuit().keygen();
  }

  std::string report() const {
    return runtime::report(model_->circuit().circuit(), model_->circuit().statistics());
  }

  nb::dict statistics() const { return statistics_of(model_->circuit()); }

  // Writes dir/server.fheml and dir/client.fheml (deploy::save_artifacts), the link as the
  // client's post-processing.
  void save(const std::filesystem::path& dir, const std::string& metadata) const {
    nb::gil_scoped_release release;
    deploy::save_artifacts(dir, model_->circuit().circuit(),
                           std::string(models::to_string(model_->link())), metadata);
  }

  // server.fheml's and client.fheml's bytes, as save() would write them (for runs that ship the
  // circuit to other processes: fheml.distributed).
  nb::tuple artifacts(const std::string& metadata) const {
    std::vector<std::uint8_t> server, client;
    {
      nb::gil_scoped_release release;
      const compiler::Circuit& circuit = model_->circuit().circuit();
      server = deploy::serialize_server_circuit(circuit);
      client = deploy::serialize(deploy::make_client_spec(
          circuit, std::string(models::to_string(model_->link())), metadata));
    }
    return nb::make_tuple(to_bytes(server), to_bytes(client));
  }

  std::size_t features() const { return model_->features(); }
  std::size_t outputs() const { return model_->outputs(); }
  std::string link() const { return std::string(models::to_string(model_->link())); }

 protected:
  std::optional<Model> model_;
};

template <class Py>
nb::class_<Py>& def_model_methods(nb::class_<Py>& c) {
  return c
      .def("decision_function", &Py::decision_function, nb::arg("x"), nb::arg("fhe") = "disable",
           "Rows [N, F] -> the model's raw outputs [N, C] (before the link) in mode fhe.")
      .def("post_processing", &Py::post_processing, nb::arg("decision"),
           "The link applied to decrypted outputs [N, C].")
      .def("quantize_input", &Py::quantize_input, nb::arg("x"),
           "Rows [N, F] -> integer grid levels [N, F].")
      .def("run_integers", &Py::run_integers, nb::arg("q"), nb::arg("fhe") = "disable")
      .def("dequantize_output", &Py::dequantize_output, nb::arg("q"))
      .def("keygen", &Py::keygen, "Generates the keys now (else the first execute does).")
      .def("report", &Py::report, "Per-node table, parameters and statistics.")
      .def("statistics", &Py::statistics)
      .def("artifacts", &Py::artifacts, nb::arg("metadata") = "{}",
           "(server.fheml bytes, client.fheml bytes), as save() writes them.")
      .def("save", &Py::save, nb::arg("path"), nb::arg("metadata") = "{}",
           "Writes the deployment artifacts path/server.fheml and path/client.fheml.")
      .def_prop_ro("features", &Py::features)
      .def_prop_ro("outputs", &Py::outputs)
      .def_prop_ro("link", &Py::link);
}

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

// The compiler's options for a network, from Python's keywords.
compiler::CompileOptions network_options(const std::map<std::string, std::int64_t>& n_bits,
                                         std::optional<std::int64_t> rounding_threshold_bits,
                                         const std::string& rounding_method,
                                         std::int64_t max_lookup_bits,
                                         std::optional<double> p_error,
                                         std::optional<double> global_p_error,
                                         bool per_channel_activations) {
  compiler::CompileOptions c;
  c.quantization.n_bits = parse_n_bits(n_bits);
  if (rounding_threshold_bits) {
    if (*rounding_threshold_bits < 1 || *rounding_threshold_bits > 16) {
      throw std::invalid_argument("rounding_threshold_bits must be in 1..16, found " +
                                  std::to_string(*rounding_threshold_bits));
    }
    c.quantization.rounding_threshold_bits = static_cast<std::uint32_t>(*rounding_threshold_bits);
  }
  if (rounding_method == "exact") {
    c.quantization.rounding_method = quant::RoundingMethod::kExact;
  } else if (rounding_method == "approximate") {
    c.quantization.rounding_method = quant::RoundingMethod::kApproximate;
  } else {
    throw std::invalid_argument("rounding_method must be 'exact' or 'approximate', found '" +
                                rounding_method + "'");
  }
  if (max_lookup_bits < 1 || max_lookup_bits > 16) {
    throw std::invalid_argument("max_lookup_bits must be in 1..16, found " +
                                std::to_string(max_lookup_bits));
  }
  c.quantization.max_lookup_bits = static_cast<std::uint32_t>(max_lookup_bits);
  c.quantization.per_channel_activations = per_channel_activations;
  c.quantization.per_channel_inputs = true;
  c.p_error = p_error;
  c.global_p_error = global_p_error;
  return c;
}

models::NeuralNetworkOptions network_model_options(
    const std::map<std::string, std::int64_t>& n_bits,
    std::optional<std::int64_t> rounding_threshold_bits, const std::string& rounding_method,
    std::int64_t max_lookup_bits, std::optional<double> p_error,
    std::optional<double> global_p_error, unsigned threads, bool search, double min_agreement,
    bool per_channel_activations, const std::string& out_of_range, int security_level,
    const std::string& profile, std::int64_t max_partitions, std::int64_t output_noise_bits) {
  models::NeuralNetworkOptions options;
  options.runtime.out_of_range = quant::parse_out_of_range(out_of_range);
  options.compile =
      network_options(n_bits, rounding_threshold_bits, rounding_method, max_lookup_bits, p_error,
                      global_p_error, per_channel_activations);
  options.compile.search.security = parse_security_level(security_level);
  options.compile.profile = compiler::parse_profile(profile);
  options.compile.max_partitions = parse_max_partitions(max_partitions);
  if (output_noise_bits < 0 || output_noise_bits > compiler::kMaxOutputNoiseBits) {
    throw std::invalid_argument("output_noise_bits must be in 0.." +
                                std::to_string(compiler::kMaxOutputNoiseBits) + ", found " +
                                std::to_string(output_noise_bits));
  }
  options.compile.output_noise_bits = static_cast<std::uint32_t>(output_noise_bits);
  options.runtime.threads = threads;
  if (!(min_agreement >= 0.0 && min_agreement <= 1.0)) {
    throw std::invalid_argument("min_agreement must be in [0, 1], found " +
                                std::to_string(min_agreement));
  }
  options.search.enabled = search;
  options.search.min_agreement = min_agreement;
  return options;
}

nb::dict import_info(const models::OnnxImport& imported) {
  nb::dict d;
  d["graph"] = ir::to_string(imported.graph);
  d["post_processing"] = std::string(models::to_string(imported.post_processing));
  d["opset"] = imported.opset;
  d["ir_version"] = imported.ir_version;
  d["producer"] = imported.producer;
  d["notes"] = imported.notes;
  const ir::Shape& shape = imported.graph.node(imported.graph.inputs().at(0)).shape;
  d["input_shape"] = std::vector<std::size_t>(shape.begin(), shape.end());
  return d;
}

// A network from a serialized ONNX model (what fheml.onnx and fheml.torch hand over).
class PyNeuralNetwork : public PyModel<models::NeuralNetwork> {
 public:
  PyNeuralNetwork(const nb::bytes& onnx, const InMatrix& calibration,
                  const std::map<std::string, std::int64_t>& n_bits,
                  std::optional<std::int64_t> rounding_threshold_bits,
                  const std::string& rounding_method, std::int64_t max_lookup_bits,
                  std::optional<double> p_error, std::optional<double> global_p_error,
                  unsigned threads, bool search, double min_agreement, bool per_channel_activations,
                  const std::string& out_of_range, int security_level, const std::string& profile,
                  std::int64_t max_partitions, std::int64_t output_noise_bits) {
    const models::NeuralNetworkOptions options = network_model_options(
        n_bits, rounding_threshold_bits, rounding_method, max_lookup_bits, p_error, global_p_error,
        threads, search, min_agreement, per_channel_activations, out_of_range, security_level,
        profile, max_partitions, output_noise_bits);
    const std::vector<std::uint8_t> bytes(as_span(onnx).begin(), as_span(onnx).end());
    const models::Matrix rows = to_matrix(calibration);
    nb::gil_scoped_release release;
    models::OnnxImport imported = models::import_onnx(bytes);
    info_ = imported;
    model_.emplace(std::move(imported.graph), imported.post_processing, rows, options);
  }

  // scikit-learn's MLPs: the weights of each layer, no ONNX in between.
  PyNeuralNetwork(const nb::list& coefs, const nb::list& intercepts, const std::string& activation,
                  const std::string& link, const InMatrix& calibration,
                  const std::map<std::string, std::int64_t>& n_bits,
                  std::optional<std::int64_t> rounding_threshold_bits,
                  const std::string& rounding_method, std::int64_t max_lookup_bits,
                  std::optional<double> p_error, std::optional<double> global_p_error,
                  unsigned threads, bool search, double min_agreement, bool per_channel_activations,
                  const std::vector<double>& activation_clip, std::uint32_t activation_levels,
                  const std::string& out_of_range, int security_level, const std::string& profile,
                  std::int64_t max_partitions, std::int64_t output_noise_bits) {
    const models::NeuralNetworkOptions options = network_model_options(
        n_bits, rounding_threshold_bits, rounding_method, max_lookup_bits, p_error, global_p_error,
        threads, search, min_agreement, per_channel_activations, out_of_range, security_level,
        profile, max_partitions, output_noise_bits);
    std::vector<models::Matrix> w;
    std::vector<std::vector<double>> b;
    for (const nb::handle h : coefs) w.push_back(to_matrix(nb::cast<InMatrix>(h)));
    for (const nb::handle h : intercepts) {
      const InVector v = nb::cast<InVector>(h);
      b.emplace_back(v.data(), v.data() + v.shape(0));
    }
    const models::Link l = models::parse_link(link);
    const models::Matrix rows = to_matrix(calibration);
    nb::gil_scoped_release release;
    ir::FloatGraph graph = models::mlp_graph(w, b, activation, activation_clip, activation_levels);
    info_.post_processing = l;
    info_.producer = "scikit-learn MLP";
    model_.emplace(std::move(graph), l, rows, options);
  }

  OutMatrix<double> float_decision_function(const InMatrix& x) const {
    const models::Matrix rows = to_matrix(x);
    models::Matrix out;
    {
      nb::gil_scoped_release release;
      out = model_->float_decision_function(rows);
    }
    return to_numpy(std::move(out));
  }
  std::vector<std::size_t> input_shape() const {
    return {model_->input_shape().begin(), model_->input_shape().end()};
  }
  double calibration_agreement() const { return model_->calibration_agreement(); }
  nb::list precision_trials() const {
    nb::list out;
    for (std::size_t i = 0; i < model_->trials().size(); ++i) {
      const models::PrecisionTrial& t = model_->trials()[i];
      nb::dict d;
      d["n_bits"] =
          std::map<std::string, std::int64_t>{{"model_inputs", t.candidate.n_bits.model_inputs},
                                              {"op_inputs", t.candidate.n_bits.op_inputs},
                                              {"op_weights", t.candidate.n_bits.op_weights},
                                              {"model_outputs", t.candidate.n_bits.model_outputs}};
      d["rounding_threshold_bits"] = t.candidate.rounding_threshold_bits;
      d["agreement"] = t.agreement;
      d["estimated_latency_ms"] = t.estimated_latency_ms;
      d["error"] = t.error;
      d["chosen"] = i == model_->chosen_trial();
      out.append(d);
    }
    return out;
  }
  nb::dict import_info_dict() const {
    models::OnnxImport copy;
    copy.graph = model_->graph();
    copy.post_processing = info_.post_processing;
    copy.opset = info_.opset;
    copy.ir_version = info_.ir_version;
    copy.producer = info_.producer;
    copy.notes = info_.notes;
    return import_info(copy);
  }

 private:
  models::OnnxImport info_;  // its graph moved into the model
};

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

  nb::class_<PyNeuralNetwork> network(
      m, "NeuralNetwork",
      "A network imported from ONNX (C++ importer) and compiled to a TFHE circuit: linear ops "
      "without bootstrap, element-wise chains fused into one lookup, accumulators rounded to "
      "the lookup width; a final Softmax/LogSoftmax/ArgMax runs on the client.");
  network
      .def(nb::init<const nb::bytes&, const InMatrix&, const std::map<std::string, std::int64_t>&,
                    std::optional<std::int64_t>, const std::string&, std::int64_t,
                    std::optional<double>, std::optional<double>, unsigned, bool, double, bool,
                    const std::string&, int, const std::string&, std::int64_t, std::int64_t>(),
           nb::arg("onnx"), nb::arg("calibration"), nb::arg("n_bits"),
           nb::arg("rounding_threshold_bits").none() = nb::none(),
           nb::arg("rounding_method") = "approximate", nb::arg("max_lookup_bits") = 8,
           nb::arg("p_error").none() = nb::none(), nb::arg("global_p_error").none() = nb::none(),
           nb::arg("threads") = 0, nb::arg("search") = false, nb::arg("min_agreement") = 0.99,
           nb::arg("per_channel_activations") = true, nb::arg("out_of_range") = "warn",
           nb::arg("security_level") = 128, nb::arg("profile") = "standard",
           nb::arg("max_partitions") = 3, nb::arg("output_noise_bits") = 0)
      .def("precision_trials", &PyNeuralNetwork::precision_trials,
           "The precision search's trials (n_bits, rounding bits, agreement with the float "
           "graph on the calibration rows, estimated latency, chosen).")
      .def("calibration_agreement", &PyNeuralNetwork::calibration_agreement,
           "The compiled circuit's agreement with the float graph on the calibration rows.")
      .def(nb::init<const nb::list&, const nb::list&, const std::string&, const std::string&,
                    const InMatrix&, const std::map<std::string, std::int64_t>&,
                    std::optional<std::int64_t>, const std::string&, std::int64_t,
                    std::optional<double>, std::optional<double>, unsigned, bool, double, bool,
                    const std::vector<double>&, std::uint32_t, const std::string&, int,
                    const std::string&, std::int64_t, std::int64_t>(),
           nb::arg("coefs"), nb::arg("intercepts"), nb::arg("activation"), nb::arg("link"),
           nb::arg("calibration"), nb::arg("n_bits"),
           nb::arg("rounding_threshold_bits").none() = nb::none(),
           nb::arg("rounding_method") = "approximate", nb::arg("max_lookup_bits") = 8,
           nb::arg("p_error").none() = nb::none(), nb::arg("global_p_error").none() = nb::none(),
           nb::arg("threads") = 0, nb::arg("search") = false, nb::arg("min_agreement") = 0.99,
           nb::arg("per_channel_activations") = true,
           nb::arg("activation_clip") = std::vector<double>{}, nb::arg("activation_levels") = 0,
           nb::arg("out_of_range") = "warn", nb::arg("security_level") = 128,
           nb::arg("profile") = "standard", nb::arg("max_partitions") = 3,
           nb::arg("output_noise_bits") = 0, "scikit-learn's MLP layers: coefs [in, out] and intercepts per layer.")
      .def("float_decision_function", &PyNeuralNetwork::float_decision_function, nb::arg("x"),
           "The imported float graph on doubles (the reference).")
      .def_prop_ro("input_shape", &PyNeuralNetwork::input_shape)
      .def("import_info", &PyNeuralNetwork::import_info_dict,
           "The imported graph's text form, post-processing, opset, producer and rewrites.");
  def_model_methods(network);

  m.def(
      "import_onnx",
      [](const nb::bytes& onnx) {
        const std::vector<std::uint8_t> bytes(as_span(onnx).begin(), as_span(onnx).end());
        models::OnnxImport imported;
        {
          nb::gil_scoped_release release;
          imported = models::import_onnx(bytes);
        }
        return import_info(imported);
      },
      nb::arg("onnx"), "Imports a serialized ONNX model; returns what import_info() describes.");
  m.def("supported_onnx_ops", &models::supported_onnx_ops);

  python::register_deploy(m);
}
