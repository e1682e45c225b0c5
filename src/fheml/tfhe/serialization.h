// Versioned binary serialization of parameters, keys and ciphertexts.
//
// Every object travels in an envelope (all integers little-endian, fixed width):
//
//   offset  size  field
//        0     8  magic            89 'F' 'H' 'E' 'M' 'L' 0D 0A
//        8     2  format version   1
//       10     2  object type      ObjectType
//       12     8  parameter id     fingerprint(PbsParameters), 0 when not bound to a set
//       20     8  payload length   bytes of payload that follow the header
//       28     L  payload          object-specific, see serialization.cpp
//     28+L    16  checksum         BLAKE2b-128 of header + payload
//
// Loading is "validate, then trust": the header, the declared length (against the input and
// against DeserializeOptions::max_bytes, before anything is allocated), the checksum, every
// dimension (against sane limits, and against the expected parameters when given), the exact
// payload size the dimensions imply, and secret key coefficients are checked; the object is parsed
// into a temporary and returned only when all checks passed. Every failure throws
// DeserializationError saying what was expected, what was found and what to do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/tfhe/bootstrap.h"
#include "fheml/tfhe/engine.h"
#include "fheml/tfhe/glwe.h"
#include "fheml/tfhe/keyswitch.h"
#include "fheml/tfhe/lwe.h"
#include "fheml/tfhe/parameters.h"

namespace fheml::tfhe {

// Bad bytes from outside: an invalid_argument, as for any other bad input.
class DeserializationError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// 2 (2026-12-04): small keys are the first n coefficients of the big key and key switching keys
// say so (KeyswitchShape::shared_prefix); format 1 objects are refused (wire.cpp).
// 3 (2026-12-05): parameter sets carry extension_log (lookup tables larger than the key's ring,
// bootstrap.h); format 2 sets read as extension_log 0, with the fingerprints they were written
// with.
inline constexpr std::uint16_t kSerializationFormatVersion = 3;
inline constexpr std::size_t kEnvelopeHeaderBytes = 28;
inline constexpr std::size_t kEnvelopeChecksumBytes = 16;
inline constexpr std::size_t kEnvelopeOverheadBytes = kEnvelopeHeaderBytes + kEnvelopeChecksumBytes;

// Values are part of the format: never renumber, only append.
enum class ObjectType : std::uint16_t {
  kPbsParameters = 1,
  kLweSecretKey = 2,
  kGlweSecretKey = 3,
  kClientKey = 4,
  kLweCiphertext = 5,
  kLweCiphertextList = 6,
  kSeededLweCiphertextList = 7,
  kGlweCiphertext = 8,
  kKeyswitchKey = 9,
  kSeededKeyswitchKey = 10,
  kBootstrapKey = 11,
  kSeededBootstrapKey = 12,
  kCompressedServerKey = 13,
  // Deployment objects (fheml/deploy/artifacts.h): they share the envelope and its checks.
  kClientSpec = 14,
  kServerCircuit = 15,
  kEvaluationKeys = 16,
  kEncryptedInputs = 17,
  kEncryptedOutputs = 18,
};

// "LweCiphertext", ... or "unknown object type N".
std::string object_type_name(std::uint16_t type);

// Largest dimensions a loader accepts: beyond any parameter set the library produces, small
// enough that sizes computed from them cannot overflow.
inline constexpr std::uint64_t kMaxLweDimension = std::uint64_t{1} << 21;  // >= 16 * 2^17 = k*N
inline constexpr std::uint64_t kMaxGlweDimension = 16;
inline constexpr std::uint64_t kMinPolynomialSize = std::uint64_t{1} << 5;  // FftPlan::kMinSize
inline constexpr std::uint64_t kMaxPolynomialSize = std::uint64_t{1} << 17;

struct SerializeOptions {
  // Stamps fingerprint(*parameters) in the envelope of an object that carries no parameter set
  // itself (ciphertexts, bare keys), after checking that its dimensions fit them; a loader given
  // other expected parameters then refuses it. Objects that hold a PbsParameters (ClientKey,
  // CompressedServerKey, PbsParameters) always carry their own fingerprint.
  const PbsParameters* parameters = nullptr;
};

struct DeserializeOptions {
  // When set, the object's parameter fingerprint (if any) and its dimensions must match.
  const PbsParameters* expected_parameters = nullptr;
  // Refuse payloads declared larger than this, before allocating anything.
  std::uint64_t max_bytes = std::uint64_t{4} << 30;
  // Parameter sets below 128-bit security are refused unless this is set (tests and test
  // vectors only; the name says it): a client must never encrypt under parameters a corrupt or
  // hostile spec chose.
  bool unsafe_allow_insecure_parameters = false;
};

// What the header says, without parsing the payload (the checksum is not verified either).
struct EnvelopeInfo {
  std::uint16_t format_version = 0;
  std::uint16_t object_type = 0;
  std::uint64_t parameter_fingerprint = 0;
  std::uint64_t payload_bytes = 0;
};
EnvelopeInfo read_envelope_header(std::span<const std::uint8_t> bytes);

std::vector<std::uint8_t> serialize(const PbsParameters& value);
std::vector<std::uint8_t> serialize(const LweSecretKey& value, const SerializeOptions& = {});
std::vector<std::uint8_t> serialize(const GlweSecretKey& value, const SerializeOptions& = {});
std::vector<std::uint8_t> serialize(const ClientKey& value);
std::vector<std::uint8_t> serialize(const LweCiphertext& value, const SerializeOptions& = {});
std::vector<std::uint8_t> serialize(const LweCiphertextList& value, const SerializeOptions& = {});
std::vector<std::uint8_t> serialize(const SeededLweCiphertextList& value,
                                    const SerializeOptions& = {});
std::vector<std::uint8_t> serialize(const GlweCiphertext& value, const SerializeOptions& = {});
std::vector<std::uint8_t> serialize(const KeyswitchKey& value, const SerializeOptions& = {});
std::vector<std::uint8_t> serialize(const SeededKeyswitchKey& value, const SerializeOptions& = {});
std::vector<std::uint8_t> serialize(const BootstrapKey& value, const SerializeOptions& = {});
std::vector<std::uint8_t> serialize(const SeededBootstrapKey& value, const SerializeOptions& = {});
std::vector<std::uint8_t> serialize(const CompressedServerKey& value);

// Bytes that serialize(value) produces, computed without serializing (for size reports).
std::size_t serialized_size(const PbsParameters& value);
std::size_t serialized_size(const LweSecretKey& value);
std::size_t serialized_size(const GlweSecretKey& value);
std::size_t serialized_size(const ClientKey& value);
std::size_t serialized_size(const LweCiphertext& value);
std::size_t serialized_size(const LweCiphertextList& value);
std::size_t serialized_size(const SeededLweCiphertextList& value);
std::size_t serialized_size(const GlweCiphertext& value);
std::size_t serialized_size(const KeyswitchKey& value);
std::size_t serialized_size(const SeededKeyswitchKey& value);
std::size_t serialized_size(const BootstrapKey& value);
std::size_t serialized_size(const SeededBootstrapKey& value);
std::size_t serialized_size(const CompressedServerKey& value);

// All throw DeserializationError on any invalid input; none returns a partly built object.
PbsParameters deserialize_pbs_parameters(std::span<const std::uint8_t> bytes,
                                         const DeserializeOptions& options = {});
LweSecretKey deserialize_lwe_secret_key(std::span<const std::uint8_t> bytes,
                                        const DeserializeOptions& options = {});
GlweSecretKey deserialize_glwe_secret_key(std::span<const std::uint8_t> bytes,
                                          const DeserializeOptions& options = {});
ClientKey deserialize_client_key(std::span<const std::uint8_t> bytes,
                                 const DeserializeOptions& options = {});
LweCiphertext deserialize_lwe_ciphertext(std::span<const std::uint8_t> bytes,
                                         const DeserializeOptions& options = {});
LweCiphertextList deserialize_lwe_ciphertext_list(std::span<const std::uint8_t> bytes,
                                                  const DeserializeOptions& options = {});
SeededLweCiphertextList deserialize_seeded_lwe_ciphertext_list(
    std::span<const std::uint8_t> bytes, const DeserializeOptions& options = {});
GlweCiphertext deserialize_glwe_ciphertext(std::span<const std::uint8_t> bytes,
                                           const DeserializeOptions& options = {});
KeyswitchKey deserialize_keyswitch_key(std::span<const std::uint8_t> bytes,
                                       const DeserializeOptions& options = {});
SeededKeyswitchKey deserialize_seeded_keyswitch_key(std::span<const std::uint8_t> bytes,
                                                    const DeserializeOptions& options = {});
BootstrapKey deserialize_bootstrap_key(std::span<const std::uint8_t> bytes,
                                       const DeserializeOptions& options = {});
SeededBootstrapKey deserialize_seeded_bootstrap_key(std::span<const std::uint8_t> bytes,
                                                    const DeserializeOptions& options = {});
CompressedServerKey deserialize_compressed_server_key(std::span<const std::uint8_t> bytes,
                                                      const DeserializeOptions& options = {});

}  // namespace fheml::tfhe
