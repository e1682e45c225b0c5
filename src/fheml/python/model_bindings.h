// What the model classes of the Python module (_core) share: option parsing, statistics, and
// PyModel, the methods every compiled model offers Python (module.cpp defines the helpers and
// the linear and tree models, network_bindings.cpp the networks).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/string.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/deploy/deploy.h"
#include "fheml/models/linear_model.h"
#include "fheml/python/bindings.h"
#include "fheml/runtime/runtime.h"
#include "fheml/runtime/statistics.h"

namespace fheml::python {

// "disable", "simulate" or "execute"; ValueError otherwise.
runtime::Mode parse_mode(const std::string& mode);
// 128 or 132 (tfhe::SecurityLevel); ValueError otherwise.
tfhe::SecurityLevel parse_security_level(int bits);
// 1..compiler::kMaxPartitions; ValueError otherwise.
std::size_t parse_max_partitions(std::int64_t count);
// n_bits as Concrete ML's dict: {"model_inputs": 8, "op_weights": 8, ...}; missing roles keep
// the defaults. Range checks are the quantizer's (its message names the role).
quant::NBits parse_n_bits(const std::map<std::string, std::int64_t>& roles);
// What a data scientist asks about a compiled model: sizes, precision, parameters, timings.
nb::dict statistics_of(const runtime::FheCircuit& fhe);

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

// network_bindings.cpp: NeuralNetwork, import_onnx, supported_onnx_ops.
void register_networks(nb::module_& m);

}  // namespace fheml::python
