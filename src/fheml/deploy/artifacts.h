// Deployment formats: what travels from the model's maker to the server and to the client, and
// between client and server at run time. Every object is an envelope of tfhe/serialization.h
// (magic, format version, type, parameter fingerprint, length, BLAKE2b checksum; little-endian
// fixed-width integers, IEEE-754 doubles by bit pattern), so a file written on one machine,
// CPU architecture or language binding reads the same on any other, and a loader validates
// everything before it builds anything.
//
//   ClientSpec       client.fheml: parameters, input/output encodings, quantizers,
//                    post-processing, the maker's metadata. No weights, no keys.
//   ServerCircuit    server.fheml: the compiled circuit (integer graph with its clear weights,
//                    widths, parameters). No keys.
//   EvaluationKeys   client -> server: the compressed (seeded) evaluation keys.
//   EncryptedInputs  client -> server: seeded input ciphertexts for a batch of samples.
//   EncryptedOutputs server -> client: output ciphertexts.
//
// The secret key is in none of them: it is written only by Client (deploy.h) to the client's
// own key directory.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fheml/compiler/circuit.h"
#include "fheml/runtime/runtime.h"
#include "fheml/tfhe/serialization.h"

namespace fheml::deploy {

// Version of the payload layouts below (the envelope has its own). A loader refuses any other
// with a message naming both; bump it whenever a layout changes.
// 2: input quantizers carry their encoding (integer or thermometer).
// 3: evaluation keys, encrypted inputs and outputs carry the secret key's id
//    (runtime::key_id); tree models' input grids cover every threshold.
// 4: noise sites carry the part of nu2 on fresh inputs (nu2_fresh).
// 5: partitions: the circuit's and the client's parameter set per partition, each lookup's
//    partition, the noise sites' sources, and evaluation keys per partition.
// 6: partitions with big keys of their own and the key switches between them.
// 7: approximate outputs: the circuit's output noise bits, each output encoding's noise bits.
// 8: small keys are the first n coefficients of their big key; key switching keys carry their
//    shared prefix (tfhe serialization format 2).
// 9: parameter sets carry extension_log (tfhe serialization format 3).
inline constexpr std::uint64_t kArtifactFormatVersion = 9;

// What the client holds.
struct ClientSpec {
  std::uint64_t circuit_id = 0;  // the server circuit it was made with (circuit_id below)
  runtime::ClientCircuit circuit;
  std::vector<quant::InputQuantizer> input_quantizers;        // one per circuit input
  std::vector<quant::OutputDequantizer> output_dequantizers;  // one per circuit output
  // Applied by the client after dequantization: a models::Link name ("identity", "sigmoid",
  // "softmax", "exp", ...).
  std::string post_processing = "identity";
  // The maker's description, as JSON text (the Python layer keeps the estimator's name and
  // classes_ here); stored and returned as is.
  std::string metadata = "{}";
};

// Stable identifier of a compiled circuit: the first 8 bytes (little-endian) of the BLAKE2b-128
// checksum of its serialized server form. Inputs, outputs and specs carry it, so that
// ciphertexts made for one model are refused by another.
std::uint64_t circuit_id(const compiler::Circuit& circuit);

// The client's part of `circuit`. Throws std::invalid_argument for an unknown post_processing
// name or a circuit whose widths are malformed.
ClientSpec make_client_spec(const compiler::Circuit& circuit,
                            std::string post_processing = "identity", std::string metadata = "{}");

// Largest payloads the loaders accept by default (DeserializeOptions::max_bytes overrides).
inline constexpr std::uint64_t kMaxSpecBytes = std::uint64_t{64} << 20;
inline constexpr std::uint64_t kMaxCircuitBytes = std::uint64_t{1} << 30;

std::vector<std::uint8_t> serialize(const ClientSpec& spec);
// Throws tfhe::DeserializationError (an std::invalid_argument) on anything invalid: envelope,
// version, sizes, widths, quantizer sizes, parameters below 128-bit security, an unknown
// post-processing name.
ClientSpec deserialize_client_spec(std::span<const std::uint8_t> bytes,
                                   const tfhe::DeserializeOptions& options = {});

std::vector<std::uint8_t> serialize_server_circuit(const compiler::Circuit& circuit);
// Also rebuilds the integer graph through IntGraph::add (every invariant re-checked) and checks
// what runtime::Program needs (widths, lookup tables against the polynomial size).
compiler::Circuit deserialize_server_circuit(std::span<const std::uint8_t> bytes,
                                             const tfhe::DeserializeOptions& options = {});

std::vector<std::uint8_t> serialize(const runtime::CompressedEvaluationKeys& keys);
runtime::CompressedEvaluationKeys deserialize_evaluation_keys(
    std::span<const std::uint8_t> bytes, const tfhe::DeserializeOptions& options = {});

struct EncryptedInputs {
  std::uint64_t circuit_id = 0;
  std::uint64_t key_id = 0;  // the secret key they are encrypted under (runtime::key_id)
  std::vector<runtime::EncryptedInput> inputs;  // one per circuit input
};
struct EncryptedOutputs {
  std::uint64_t circuit_id = 0;
  std::uint64_t key_id = 0;                       // the inputs' key id: the key that decrypts them
  std::vector<runtime::EncryptedOutput> outputs;  // one per circuit output
};

std::vector<std::uint8_t> serialize(const EncryptedInputs& inputs);
EncryptedInputs deserialize_encrypted_inputs(std::span<const std::uint8_t> bytes,
                                             const tfhe::DeserializeOptions& options = {});
std::vector<std::uint8_t> serialize(const EncryptedOutputs& outputs);
EncryptedOutputs deserialize_encrypted_outputs(std::span<const std::uint8_t> bytes,
                                               const tfhe::DeserializeOptions& options = {});

}  // namespace fheml::deploy
