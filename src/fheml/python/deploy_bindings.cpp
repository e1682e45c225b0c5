// The deployment classes of the Python module: deploy::Client (keys, encryption, decryption),
// deploy::Server (runs on ciphertexts) and the evaluation keys a server loads once.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fheml/deploy/artifacts.h"
#include "fheml/deploy/deploy.h"
#include "fheml/models/linear_model.h"
#include "fheml/python/bindings.h"
#include "fheml/tfhe/thread_pool.h"

namespace fheml::python {
namespace {

using deploy::hex_id;

// A stage's ciphertexts or replies as they travel between a coordinator and its workers:
// [count, lwe size] words; the tables as [count, 2] (node, table).
using InWords = nb::ndarray<const std::uint64_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using InLookups = nb::ndarray<const std::uint32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

// The inverse of deploy::hex_id: exactly 16 hex digits.
std::uint64_t parse_hex_id(const std::string& text, const char* what) {
  std::uint64_t id = 0;
  bool ok = text.size() == 16;
  for (const char c : text) {
    const int digit = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
    ok = ok && digit >= 0;
    id = (id << 4) | static_cast<std::uint64_t>(digit & 15);
  }
  if (!ok) {
    throw std::invalid_argument(std::string(what) + " must be 16 hex digits, found '" + text + "'");
  }
  return id;
}

// Ciphertexts of dimension words.shape(1) - 1 (a circuit's big keys may differ: runtime::run_stage
// and run_staged check each list against the big key it should be under).
tfhe::LweCiphertextList to_list(const InWords& words) {
  if (words.shape(1) < 2) {
    throw std::invalid_argument("stage ciphertexts of " + std::to_string(words.shape(1)) +
                                " words: a ciphertext has at least 2");
  }
  tfhe::LweCiphertextList list(tfhe::LweDimension{words.shape(1) - 1}, 0);
  list.data.assign(words.data(), words.data() + words.shape(0) * words.shape(1));
  return list;
}

OutMatrix<std::uint64_t> words_to_numpy(const tfhe::LweCiphertextList& list) {
  return to_numpy(std::vector<std::uint64_t>(list.data), list.count(),
                  tfhe::lwe_size(list.dimension));
}

// deploy::Client for models whose inputs are one tensor per sample (rows of a matrix, reshaped
// to the input's shape) and whose outputs are flattened per sample.
class PyClient {
 public:
  PyClient(const std::filesystem::path& artifact_dir, const std::filesystem::path& key_dir,
           const std::string& out_of_range, bool allow_readable_secret_key)
      : client_(artifact_dir, key_dir,
                deploy::ClientOptions{quant::parse_out_of_range(out_of_range),
                                      allow_readable_secret_key}) {
    check_one_input();
  }
  // From client.fheml's bytes, keys in memory only (a model's own client for distributed runs).
  PyClient(deploy::ClientSpec spec, const std::string& out_of_range)
      : client_(std::move(spec), {},
                deploy::ClientOptions{quant::parse_out_of_range(out_of_range)}) {
    check_one_input();
  }

  void generate_keys(bool force) {
    nb::gil_scoped_release release;
    client_.generate_private_and_evaluation_keys(force);
  }

  nb::bytes evaluation_keys() const { return to_bytes(client_.serialized_evaluation_keys()); }

  nb::bytes quantize_encrypt_serialize(const InMatrix& x) {
    // The float input's shape (a thermometer-coded input travels as more integers than this).
    const quant::InputQuantizer& input = client_.spec().input_quantizers[0];
    const std::size_t width = ir::element_count(input.shape);
    if (x.shape(1) != width) {
      throw std::invalid_argument("X has " + std::to_string(x.shape(1)) +
                                  " values per row, the model's input " +
                                  ir::to_string(input.shape) + " takes " + std::to_string(width));
    }
    std::vector<runtime::FloatSample> samples(x.shape(0));
    for (std::size_t r = 0; r < samples.size(); ++r) {
      samples[r].emplace_back(
          input.shape, std::vector<double>(x.data() + r * width, x.data() + (r + 1) * width));
    }
    std::vector<std::uint8_t> bytes;
    {
      nb::gil_scoped_release release;
      bytes = client_.quantize_encrypt_serialize(samples);
    }
    return to_bytes(bytes);
  }

  // Decision values [N, total output elements], before post-processing.
  OutMatrix<double> deserialize_decrypt_dequantize(const nb::bytes& result) const {
    std::vector<runtime::FloatSample> samples;
    {
      const std::span<const std::uint8_t> bytes = as_span(result);
      nb::gil_scoped_release release;
      samples = client_.deserialize_decrypt_dequantize(bytes);
    }
    std::size_t width = 0;
    for (const auto& o : client_.spec().circuit.outputs) width += ir::element_count(o.shape);
    std::vector<double> out;
    out.reserve(samples.size() * width);
    for (const auto& sample : samples)
      for (const auto& t : sample) out.insert(out.end(), t.data.begin(), t.data.end());
    return to_numpy(std::move(out), samples.size(), width);
  }

  OutMatrix<double> post_processing(const InMatrix& decision) const {
    return to_numpy(models::apply_link(models::parse_link(client_.spec().post_processing),
                                       to_matrix(decision)));
  }

  std::string metadata() const { return client_.spec().metadata; }
  std::string circuit_id() const { return hex_id(client_.spec().circuit_id); }
  std::string key_id() const { return hex_id(client_.key_id()); }
  bool has_keys() const { return client_.has_keys(); }

 private:
  void check_one_input() const {
    if (client_.spec().circuit.inputs.size() != 1) {
      throw std::invalid_argument(
          "the Python client takes models with one input tensor, this one has " +
          std::to_string(client_.spec().circuit.inputs.size()));
    }
  }

  deploy::Client client_;
};

// Evaluation keys checked against a circuit and decompressed once (deploy::Server::
// load_evaluation_keys): what a worker keeps between the tasks of one client's run.
class PyEvaluationKeys {
 public:
  explicit PyEvaluationKeys(runtime::EvaluationKeys keys)
      : keys_(std::make_shared<const runtime::EvaluationKeys>(std::move(keys))) {}
  const runtime::EvaluationKeys& keys() const { return *keys_; }
  std::string key_id() const { return hex_id(keys_->key_id); }

 private:
  std::shared_ptr<const runtime::EvaluationKeys> keys_;
};

class PyServer {
 public:
  explicit PyServer(const std::filesystem::path& artifact_dir) : server_(artifact_dir) {}
  explicit PyServer(compiler::Circuit circuit) : server_(std::move(circuit)) {}

  PyEvaluationKeys load_evaluation_keys(const nb::bytes& evaluation_keys) const {
    const auto bytes = as_span(evaluation_keys);
    nb::gil_scoped_release release;
    return PyEvaluationKeys(server_.load_evaluation_keys(bytes));
  }

  // threads: 0 runs on the process-wide pool (every core), t > 0 on t threads of its own (a
  // Dask worker running one task per core passes 1).
  nb::bytes run_loaded(const nb::bytes& inputs, const PyEvaluationKeys& keys,
                       std::size_t threads) const {
    if (threads > runtime::kMaxThreads) {
      throw std::invalid_argument("threads must be at most " +
                                  std::to_string(runtime::kMaxThreads) + ", found " +
                                  std::to_string(threads));
    }
    std::vector<std::uint8_t> out;
    {
      const auto in = as_span(inputs);
      nb::gil_scoped_release release;
      std::optional<tfhe::ThreadPool> pool;
      if (threads > 0) pool.emplace(threads);
      out = server_.run(in, keys.keys(), pool ? &*pool : nullptr);
    }
    return to_bytes(out);
  }

  nb::bytes run(const nb::bytes& inputs, const nb::bytes& evaluation_keys) const {
    std::vector<std::uint8_t> out;
    {
      const auto in = as_span(inputs);
      const auto keys = as_span(evaluation_keys);
      nb::gil_scoped_release release;
      out = server_.run(in, keys);
    }
    return to_bytes(out);
  }

  // A request with its stages' bootstraps handed to run_stage(ciphertexts [n, size] uint64,
  // lookups [n, 2] uint32) -> ciphertexts [n, size] (fheml.distributed sends them to workers).
  nb::bytes run_staged(const nb::bytes& inputs, const std::string& key_id,
                       const nb::callable& run_stage) const {
    const std::uint64_t id = parse_hex_id(key_id, "key_id");
    const runtime::StageRunner stages = [&run_stage](const tfhe::LweCiphertextList& in,
                                                     std::span<const runtime::StageLookup> l) {
      std::vector<std::uint32_t> lookups;
      lookups.reserve(2 * l.size());
      for (const runtime::StageLookup& x : l) lookups.insert(lookups.end(), {x.node, x.table});
      nb::gil_scoped_acquire acquire;
      const nb::object result =
          run_stage(words_to_numpy(in), to_numpy(std::move(lookups), l.size(), std::size_t{2}));
      const InWords words = nb::cast<InWords>(result);
      if (words.shape(0) != in.count()) {
        throw std::invalid_argument("run_stage returned " + std::to_string(words.shape(0)) +
                                    " ciphertexts for " + std::to_string(in.count()));
      }
      return to_list(words);
    };
    std::vector<std::uint8_t> out;
    {
      const auto in = as_span(inputs);
      nb::gil_scoped_release release;
      out = server_.run_staged(in, id, stages);
    }
    return to_bytes(out);
  }

  // A worker's part of a stage: the ciphertexts of request key `key_id` (the keys' own, or an
  // error) bootstrapped with the tables `lookups` names.
  OutMatrix<std::uint64_t> run_stage(const InWords& ciphertexts, const InLookups& lookups,
                                     const PyEvaluationKeys& keys, const std::string& key_id,
                                     std::size_t threads) const {
    if (parse_hex_id(key_id, "key_id") != keys.keys().key_id) {
      throw std::invalid_argument("the stage is under key " + key_id +
                                  ", the evaluation keys were made from key " + keys.key_id());
    }
    if (lookups.shape(1) != 2 || lookups.shape(0) != ciphertexts.shape(0)) {
      throw std::invalid_argument("lookups must be [n, 2] (node, table) for n ciphertexts");
    }
    if (threads > runtime::kMaxThreads) {
      throw std::invalid_argument("threads must be at most " +
                                  std::to_string(runtime::kMaxThreads));
    }
    const tfhe::LweCiphertextList in = to_list(ciphertexts);
    std::vector<runtime::StageLookup> l(lookups.shape(0));
    for (std::size_t i = 0; i < l.size(); ++i) {
      l[i] = {lookups.data()[2 * i], lookups.data()[2 * i + 1]};
    }
    tfhe::LweCiphertextList out;
    {
      nb::gil_scoped_release release;
      std::optional<tfhe::ThreadPool> pool;
      if (threads > 0) pool.emplace(threads);
      out = runtime::run_stage(server_.program(), keys.keys(), in, l,
                               runtime::RunOptions{pool ? &*pool : nullptr});
    }
    return words_to_numpy(out);
  }

  // The key id of serialized evaluation keys, checked against the circuit, not decompressed.
  std::string evaluation_keys_id(const nb::bytes& evaluation_keys) const {
    tfhe::DeserializeOptions options;
    options.expected_parameters = &server_.circuit().parameters;
    return hex_id(deploy::deserialize_evaluation_keys(as_span(evaluation_keys), options).key_id);
  }

  std::size_t stage_count() const { return server_.program().stage_count(); }
  std::string circuit_id() const { return hex_id(server_.circuit_id()); }

 private:
  deploy::Server server_;
};

}  // namespace

void register_deploy(nb::module_& m) {
  nb::class_<PyClient>(m, "Client",
                       "The client side of a deployed model: keys (the secret key stays in "
                       "key_dir), encryption, decryption (deploy::Client).")
      .def(nb::init<const std::filesystem::path&, const std::filesystem::path&, const std::string&,
                    bool>(),
           nb::arg("path"), nb::arg("key_dir"), nb::arg("out_of_range") = "warn",
           nb::arg("allow_readable_secret_key") = false)
      .def_static(
          "from_bytes",
          [](const nb::bytes& client_spec, const std::string& out_of_range) {
            return std::make_unique<PyClient>(deploy::deserialize_client_spec(as_span(client_spec)),
                                              out_of_range);
          },
          nb::arg("client_spec"), nb::arg("out_of_range") = "warn",
          "A client of client.fheml's bytes whose keys stay in memory.")
      .def("generate_keys", &PyClient::generate_keys, nb::arg("force") = false)
      .def("evaluation_keys", &PyClient::evaluation_keys)
      .def("quantize_encrypt_serialize", &PyClient::quantize_encrypt_serialize, nb::arg("x"))
      .def("deserialize_decrypt_dequantize", &PyClient::deserialize_decrypt_dequantize,
           nb::arg("result"))
      .def("post_processing", &PyClient::post_processing, nb::arg("decision"))
      .def_prop_ro("metadata", &PyClient::metadata)
      .def_prop_ro("circuit_id", &PyClient::circuit_id)
      .def_prop_ro("key_id", &PyClient::key_id)
      .def_prop_ro("has_keys", &PyClient::has_keys);

  nb::class_<PyServer>(m, "Server",
                       "The server side of a deployed model: runs on ciphertexts with the "
                       "evaluation keys only (deploy::Server).")
      .def(nb::init<const std::filesystem::path&>(), nb::arg("path"))
      .def_static(
          "from_bytes",
          [](const nb::bytes& server_circuit) {
            return std::make_unique<PyServer>(
                deploy::deserialize_server_circuit(as_span(server_circuit)));
          },
          nb::arg("server_circuit"), "A server of server.fheml's bytes.")
      .def("run", &PyServer::run, nb::arg("serialized_encrypted"),
           nb::arg("serialized_evaluation_keys"))
      .def("run", &PyServer::run_loaded, nb::arg("serialized_encrypted"),
           nb::arg("evaluation_keys"), nb::arg("threads") = 0)
      .def("load_evaluation_keys", &PyServer::load_evaluation_keys,
           nb::arg("serialized_evaluation_keys"),
           "Checks the keys against the circuit and decompresses them, once for many runs.")
      .def("run_staged", &PyServer::run_staged, nb::arg("serialized_encrypted"), nb::arg("key_id"),
           nb::arg("run_stage"),
           "Runs a request with each stage's bootstraps handed to run_stage(ciphertexts, "
           "lookups) -> ciphertexts (uint64 [n, size], uint32 [n, 2]).")
      .def("run_stage", &PyServer::run_stage, nb::arg("ciphertexts"), nb::arg("lookups"),
           nb::arg("evaluation_keys"), nb::arg("key_id"), nb::arg("threads") = 0,
           "Bootstraps a part of a stage of run_staged with loaded evaluation keys.")
      .def("evaluation_keys_id", &PyServer::evaluation_keys_id,
           nb::arg("serialized_evaluation_keys"))
      .def_prop_ro("stage_count", &PyServer::stage_count)
      .def_prop_ro("circuit_id", &PyServer::circuit_id);

  nb::class_<PyEvaluationKeys>(m, "EvaluationKeys",
                               "Evaluation keys loaded by a Server (no secret in them).")
      .def_prop_ro("key_id", &PyEvaluationKeys::key_id);
}

}  // namespace fheml::python
