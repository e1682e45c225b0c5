// The networks of the Python module (_core): NeuralNetwork from ONNX bytes or scikit-learn's MLP
// layers, and the ONNX importer's description of a model.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/list.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/models/neural_network.h"
#include "fheml/models/onnx_import.h"
#include "fheml/python/bindings.h"
#include "fheml/python/model_bindings.h"

namespace fheml::python {
namespace {

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

}  // namespace

void register_networks(nb::module_& m) {
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
           nb::arg("output_noise_bits") = 0,
           "scikit-learn's MLP layers: coefs [in, out] and intercepts per layer.")
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
}

}  // namespace fheml::python
