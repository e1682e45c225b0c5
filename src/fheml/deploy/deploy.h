// Deployment as a data scientist knows it (the reference tool's FHEModelDev / Client / Server):
//
//   maker:   save_artifacts(dir, circuit, ...)        -> dir/server.fheml, dir/client.fheml
//   client:  Client client(dir, key_dir);
//            client.generate_private_and_evaluation_keys();   // secret key -> key_dir only
//            keys = client.serialized_evaluation_keys();       // send once
//            request = client.quantize_encrypt_serialize(samples);
//   server:  Server server(dir);                               // never sees a secret key
//            reply = server.run(request, server.load_evaluation_keys(keys));
//   client:  results = client.deserialize_decrypt_dequantize(reply);
//
// The formats are in artifacts.h. Every entry point that reads bytes from outside throws
// std::invalid_argument (tfhe::DeserializationError for malformed bytes) with what was expected
// and found; nothing is half-loaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fheml/deploy/artifacts.h"
#include "fheml/runtime/runtime.h"

namespace fheml::deploy {

inline constexpr const char* kClientFile = "client.fheml";
inline constexpr const char* kServerFile = "server.fheml";
inline constexpr const char* kClientKeyFile = "client.key";            // in the client's key_dir
inline constexpr const char* kEvaluationKeysFile = "evaluation.keys";  // in the client's key_dir
inline constexpr const char* kKeysCircuitFile = "circuit.id";  // the model the keys were made for

// 16 lowercase hexadecimal digits: how messages print circuit and key ids.
std::string hex_id(std::uint64_t id);

// Writes dir/server.fheml and dir/client.fheml (dir created if missing; files replaced
// atomically: written to a temporary name, then renamed).
void save_artifacts(const std::filesystem::path& dir, const compiler::Circuit& circuit,
                    const std::string& post_processing = "identity",
                    const std::string& metadata = "{}");

// Reads a whole file (std::invalid_argument naming the path when it cannot, or when it is
// larger than max_bytes).
std::vector<std::uint8_t> read_file(const std::filesystem::path& path,
                                    std::uint64_t max_bytes = std::uint64_t{8} << 30);
// Writes atomically (temporary file + rename); `private_file` creates it readable by its owner
// only (mode 0600 at creation). With `replace` false an existing file is never overwritten
// (std::invalid_argument instead).
void write_file(const std::filesystem::path& path, std::span<const std::uint8_t> bytes,
                bool private_file = false, bool replace = true);

struct ClientOptions {
  // Float values beyond the input quantizers' range (quantize_encrypt_serialize).
  quant::OutOfRange out_of_range = quant::OutOfRange::kWarn;
  // A secret key file that its group or others may read or write is refused unless this is set
  // (then it is loaded with a warning).
  bool allow_readable_secret_key = false;
};

class Client {
 public:
  // Loads artifact_dir/client.fheml. key_dir holds the keys once generated; an empty key_dir
  // keeps them in memory only.
  Client(const std::filesystem::path& artifact_dir, std::filesystem::path key_dir,
         const ClientOptions& options = {});
  Client(ClientSpec spec, std::filesystem::path key_dir, const ClientOptions& options = {});

  const ClientSpec& spec() const { return spec_; }

  // Loads the keys from key_dir when its secret key is there: refused with both ids when
  // key_dir/circuit.id names another model or key_dir/evaluation.keys another secret key, and
  // when the secret key file is readable by others (ClientOptions::allow_readable_secret_key);
  // evaluation keys missing from it are made again from the secret key. Otherwise generates fresh
  // keys and writes them there (every file owner-only, in a directory created owner-only; an
  // existing directory others can enter is kept as it is, with a fheml::warn). A secret key is
  // never overwritten nor deleted: `force` moves the existing files aside
  // (client.key.replaced.N, ...) first.
  void generate_private_and_evaluation_keys(bool force = false);
  bool has_keys() const { return client_keys_.has_value(); }
  // runtime::key_id of the secret key (std::logic_error before keys exist). Requests carry it;
  // a reply carrying another is refused by the deserialize_decrypt calls.
  std::uint64_t key_id() const;

  // Throw std::logic_error before keys exist.
  const std::vector<std::uint8_t>& serialized_evaluation_keys() const;
  std::vector<std::uint8_t> quantize_encrypt_serialize(
      std::span<const runtime::FloatSample> samples);
  std::vector<std::uint8_t> encrypt_serialize(std::span<const runtime::IntSample> samples);
  std::vector<runtime::FloatSample> deserialize_decrypt_dequantize(
      std::span<const std::uint8_t> bytes) const;
  std::vector<runtime::IntSample> deserialize_decrypt(std::span<const std::uint8_t> bytes) const;

 private:
  void require_keys() const;

  ClientSpec spec_;
  std::filesystem::path key_dir_;
  ClientOptions options_;
  std::optional<runtime::ClientKeys> client_keys_;
  std::uint64_t key_id_ = 0;
  std::vector<std::uint8_t> evaluation_keys_;
  // One child stream per encryption call: concurrent calls never share noise (a pointer: it
  // cannot move).
  std::unique_ptr<tfhe::NoiseSource> noise_;
};

class Server {
 public:
  explicit Server(const std::filesystem::path& artifact_dir);  // loads artifact_dir/server.fheml
  explicit Server(compiler::Circuit circuit);

  std::uint64_t circuit_id() const { return circuit_id_; }
  const compiler::Circuit& circuit() const { return program_.circuit(); }
  const runtime::Program& program() const { return program_; }

  // Deserializes, checks them against the circuit (parameters, a server key when it has
  // lookups) and decompresses: what a key store keeps per client.
  runtime::EvaluationKeys load_evaluation_keys(std::span<const std::uint8_t> bytes) const;

  // Deserializes the inputs (circuit id, counts, shapes, dimension; their key id must be the
  // evaluation keys'), runs, serializes the outputs (with the inputs' key id). Thread-safe:
  // concurrent calls share nothing mutable (pass a pool per caller, or none for the global pool).
  std::vector<std::uint8_t> run(std::span<const std::uint8_t> encrypted_inputs,
                                const runtime::EvaluationKeys& keys,
                                tfhe::ThreadPool* pool = nullptr) const;
  std::vector<std::uint8_t> run(std::span<const std::uint8_t> encrypted_inputs,
                                std::span<const std::uint8_t> evaluation_keys) const;

  // A request split at its stages (runtime::run_staged): the linear parts here, each stage's
  // bootstraps handed to `stages` (which holds the evaluation keys, e.g. on other machines, and
  // calls runtime::run_stage). The checks of run; the inputs' key id must be `key_id`, that of
  // the keys `stages` computes with. The reply is run's, byte for byte.
  std::vector<std::uint8_t> run_staged(std::span<const std::uint8_t> encrypted_inputs,
                                       std::uint64_t key_id,
                                       const runtime::StageRunner& stages) const;

 private:
  EncryptedInputs read_inputs(std::span<const std::uint8_t> bytes, std::uint64_t key_id) const;

  runtime::Program program_;
  std::uint64_t circuit_id_ = 0;
};

}  // namespace fheml::deploy
