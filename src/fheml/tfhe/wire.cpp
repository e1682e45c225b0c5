#include "fheml/tfhe/wire.h"

#include <sodium.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <string>

#include "fheml/tfhe/errors.h"
#include "fheml/tfhe/parameters.h"

namespace fheml::tfhe {
namespace wire {

std::array<std::uint8_t, kChecksumBytes> checksum(std::span<const std::uint8_t> bytes) {
  static_assert(kChecksumBytes >= crypto_generichash_BYTES_MIN);
  std::array<std::uint8_t, kChecksumBytes> out{};
  // Idempotent and thread-safe; picks libsodium's fastest implementation for this CPU.
  [[maybe_unused]] static const bool initialized = sodium_init() >= 0;
  crypto_generichash(out.data(), out.size(), bytes.data(), bytes.size(), nullptr, 0);
  return out;
}

void Writer::u16(std::uint16_t v) {
  bytes_.push_back(static_cast<std::uint8_t>(v));
  bytes_.push_back(static_cast<std::uint8_t>(v >> 8));
}

void Writer::u64(std::uint64_t v) {
  for (int i = 0; i < 8; ++i) bytes_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void Writer::f64(double v) { u64(std::bit_cast<std::uint64_t>(v)); }

void Writer::bytes(std::span<const std::uint8_t> v) {
  bytes_.insert(bytes_.end(), v.begin(), v.end());
}

void Writer::words(std::span<const std::uint64_t> v) {
  // Keys reach hundreds of MiB: grow once, then store each word's bytes in place.
  const std::size_t start = bytes_.size();
  bytes_.resize(start + 8 * v.size());
  std::uint8_t* out = bytes_.data() + start;
  for (std::uint64_t w : v) {
    for (int i = 0; i < 8; ++i) *out++ = static_cast<std::uint8_t>(w >> (8 * i));
  }
}

void Writer::bits_as_bytes(std::span<const std::uint64_t> bits) {
  for (std::uint64_t b : bits) {
    // A non-binary key is a bug in the caller; truncating it to a byte would hide it.
    FHEML_ASSERT_EQ(b <= 1, true);
    bytes_.push_back(static_cast<std::uint8_t>(b));
  }
}

std::span<const std::uint8_t> Reader::take(std::size_t count) {
  if (count > remaining()) {
    fail(context_, "payload truncated: needed " + std::to_string(count) + " more bytes, found " +
                       std::to_string(remaining()) + "; the data is incomplete, transfer it again");
  }
  const auto out = bytes_.subspan(position_, count);
  position_ += count;
  return out;
}

std::uint16_t Reader::u16() {
  const auto b = take(2);
  return static_cast<std::uint16_t>(b[0] | (b[1] << 8));
}

std::uint64_t Reader::u64() {
  const auto b = take(8);
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

double Reader::f64() { return std::bit_cast<double>(u64()); }

Seed Reader::seed() {
  const auto b = take(kSeedBytes);
  Seed s{};
  for (std::size_t i = 0; i < kSeedBytes; ++i) s[i] = b[i];
  return s;
}

void Reader::require_remaining(std::uint64_t expected, const char* what) const {
  if (remaining() != expected) {
    fail(context_, "payload size does not match the dimensions: " + std::string(what) + " need " +
                       std::to_string(expected) + " more bytes, the payload has " +
                       std::to_string(remaining()) +
                       "; the object is corrupt or was not written by fheml, re-create it");
  }
}

std::vector<std::uint64_t> Reader::words(std::size_t count) {
  const auto b = take(count * 8);  // count is bounded by the validated payload size
  std::vector<std::uint64_t> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t v = 0;
    for (int j = 7; j >= 0; --j) v = (v << 8) | b[8 * i + static_cast<std::size_t>(j)];
    out[i] = v;
  }
  return out;
}

SecretWords Reader::bits(std::size_t count, const char* what) {
  const auto b = take(count);
  SecretWords out(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (b[i] > 1) {
      fail(context_, std::string(what) + " secret key coefficient " + std::to_string(i) + " is " +
                         std::to_string(b[i]) +
                         ", expected 0 or 1; the key is corrupt, restore it from a backup");
    }
    out[i] = b[i];
  }
  return out;
}

namespace {

// PNG's trick: a high-bit byte catches 7-bit channels, CR LF catches text-mode line conversion.
constexpr std::array<std::uint8_t, 8> kMagic = {0x89, 'F', 'H', 'E', 'M', 'L', 0x0D, 0x0A};

struct TypeInfo {
  const char* name;
  const char* loader;
};

TypeInfo type_info(std::uint16_t type) {
  switch (static_cast<ObjectType>(type)) {
    case ObjectType::kPbsParameters:
      return {"PbsParameters", "deserialize_pbs_parameters"};
    case ObjectType::kLweSecretKey:
      return {"LweSecretKey", "deserialize_lwe_secret_key"};
    case ObjectType::kGlweSecretKey:
      return {"GlweSecretKey", "deserialize_glwe_secret_key"};
    case ObjectType::kClientKey:
      return {"ClientKey", "deserialize_client_key"};
    case ObjectType::kLweCiphertext:
      return {"LweCiphertext", "deserialize_lwe_ciphertext"};
    case ObjectType::kLweCiphertextList:
      return {"LweCiphertextList", "deserialize_lwe_ciphertext_list"};
    case ObjectType::kSeededLweCiphertextList:
      return {"SeededLweCiphertextList", "deserialize_seeded_lwe_ciphertext_list"};
    case ObjectType::kGlweCiphertext:
      return {"GlweCiphertext", "deserialize_glwe_ciphertext"};
    case ObjectType::kKeyswitchKey:
      return {"KeyswitchKey", "deserialize_keyswitch_key"};
    case ObjectType::kSeededKeyswitchKey:
      return {"SeededKeyswitchKey", "deserialize_seeded_keyswitch_key"};
    case ObjectType::kBootstrapKey:
      return {"BootstrapKey", "deserialize_bootstrap_key"};
    case ObjectType::kSeededBootstrapKey:
      return {"SeededBootstrapKey", "deserialize_seeded_bootstrap_key"};
    case ObjectType::kCompressedServerKey:
      return {"CompressedServerKey", "deserialize_compressed_server_key"};
    case ObjectType::kClientSpec:
      return {"ClientSpec", "deploy::deserialize_client_spec"};
    case ObjectType::kServerCircuit:
      return {"ServerCircuit", "deploy::deserialize_server_circuit"};
    case ObjectType::kEvaluationKeys:
      return {"EvaluationKeys", "deploy::deserialize_evaluation_keys"};
    case ObjectType::kEncryptedInputs:
      return {"EncryptedInputs", "deploy::deserialize_encrypted_inputs"};
    case ObjectType::kEncryptedOutputs:
      return {"EncryptedOutputs", "deploy::deserialize_encrypted_outputs"};
  }
  return {nullptr, nullptr};
}

std::string hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  char buffer[4];
  for (std::uint8_t b : bytes) {
    std::snprintf(buffer, sizeof(buffer), "%02x ", b);
    out += buffer;
  }
  if (!out.empty()) out.pop_back();
  return out;
}

}  // namespace

std::string u64_hex(std::uint64_t v) {
  char buffer[24];
  std::snprintf(buffer, sizeof(buffer), "0x%016llx", static_cast<unsigned long long>(v));
  return buffer;
}

namespace {

std::uint64_t le_u64(std::span<const std::uint8_t> b, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t i = 8; i-- > 0;) v = (v << 8) | b[at + i];
  return v;
}

std::uint16_t le_u16(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] | (b[at + 1] << 8));
}

}  // namespace

[[noreturn]] void fail(const std::string& context, const std::string& message) {
  throw DeserializationError("fheml " + context + ": " + message);
}

const char* loader_name(ObjectType type) {
  return type_info(static_cast<std::uint16_t>(type)).loader;
}

// The declared length is compared with max_bytes and with the bytes actually present, so a
// forged huge length is refused without being trusted.

Opened open_envelope(std::span<const std::uint8_t> bytes, ObjectType expected,
                     const DeserializeOptions& options, const std::string& context) {
  const std::string expected_name = type_info(static_cast<std::uint16_t>(expected)).name;
  if (bytes.empty()) {
    fail(context, "empty input: expected a serialized " + expected_name + " of at least " +
                      std::to_string(kEnvelopeOverheadBytes) +
                      " bytes, found 0 bytes; pass the bytes that serialize() wrote");
  }
  const std::size_t magic_seen = std::min(bytes.size(), kMagic.size());
  if (!std::equal(kMagic.begin(), kMagic.begin() + magic_seen, bytes.begin())) {
    fail(context, "bad magic: expected an fheml object starting with " + hex(kMagic) + ", found " +
                      hex(bytes.first(magic_seen)) +
                      "; this is not fheml serialized data (or was altered by a text-mode "
                      "transfer)");
  }
  if (bytes.size() < kEnvelopeHeaderBytes) {
    fail(context, "truncated header: expected " + std::to_string(kEnvelopeHeaderBytes) +
                      " header bytes, found " + std::to_string(bytes.size()) +
                      "; the data is incomplete, transfer it again");
  }
  const std::uint16_t version = le_u16(bytes, 8);
  if (version == 0) {
    fail(context, "invalid format version 0 (versions start at 1); the header is corrupt");
  }
  if (version > kSerializationFormatVersion) {
    fail(context, "written by a newer fheml (format " + std::to_string(version) +
                      "), this build reads up to format " +
                      std::to_string(kSerializationFormatVersion) + ": upgrade fheml");
  }
  const std::uint16_t type = le_u16(bytes, 10);
  if (type != static_cast<std::uint16_t>(expected)) {
    const TypeInfo found = type_info(type);
    fail(context, "wrong object type: expected " + expected_name + " (" +
                      std::to_string(static_cast<std::uint16_t>(expected)) + "), found " +
                      object_type_name(type) + " (" + std::to_string(type) + "); " +
                      (found.loader != nullptr ? std::string("load it with ") + found.loader
                                               : std::string("the header is corrupt")));
  }
  const std::uint64_t fp = le_u64(bytes, 12);
  if (options.expected_parameters != nullptr && fp != 0 &&
      fp != fingerprint(*options.expected_parameters)) {
    fail(context, "parameter fingerprint: expected " +
                      u64_hex(fingerprint(*options.expected_parameters)) + " (" +
                      describe(*options.expected_parameters) + "), found " + u64_hex(fp) +
                      "; the object was made for another parameter set, use matching keys");
  }
  const std::uint64_t payload_bytes = le_u64(bytes, 20);
  if (payload_bytes > options.max_bytes) {
    fail(context, "payload length " + std::to_string(payload_bytes) +
                      " bytes exceeds the limit of " + std::to_string(options.max_bytes) +
                      " bytes (DeserializeOptions::max_bytes); raise max_bytes if the object is "
                      "legitimately this large, otherwise the header is corrupt");
  }
  const std::uint64_t after_header = bytes.size() - kEnvelopeHeaderBytes;
  if (payload_bytes > after_header || after_header - payload_bytes < kEnvelopeChecksumBytes) {
    fail(context, "truncated: the header declares " + std::to_string(payload_bytes) +
                      " payload bytes plus a " + std::to_string(kEnvelopeChecksumBytes) +
                      "-byte checksum, found " + std::to_string(after_header) +
                      " bytes after the header; the data is incomplete, transfer it again");
  }
  if (after_header - payload_bytes > kEnvelopeChecksumBytes) {
    fail(context, "trailing bytes: expected " +
                      std::to_string(payload_bytes + kEnvelopeChecksumBytes) +
                      " bytes after the header, found " + std::to_string(after_header) +
                      "; pass exactly one serialized object");
  }
  const std::size_t sealed = kEnvelopeHeaderBytes + static_cast<std::size_t>(payload_bytes);
  const auto stored = bytes.subspan(sealed, kEnvelopeChecksumBytes);
  const auto computed = checksum(bytes.first(sealed));
  if (!std::equal(computed.begin(), computed.end(), stored.begin())) {
    fail(context, "checksum mismatch: expected " + hex(computed) + ", found " + hex(stored) +
                      "; the bytes were corrupted in storage or transit, transfer them again");
  }
  return {fp, bytes.subspan(kEnvelopeHeaderBytes, static_cast<std::size_t>(payload_bytes)),
          version};
}

Writer begin_envelope(ObjectType type, std::uint64_t fp, std::uint64_t payload_bytes) {
  Writer w(kEnvelopeOverheadBytes + payload_bytes);
  w.bytes(kMagic);
  w.u16(kSerializationFormatVersion);
  w.u16(static_cast<std::uint16_t>(type));
  w.u64(fp);
  w.u64(payload_bytes);
  return w;
}

std::vector<std::uint8_t> finish_envelope(Writer&& w, std::uint64_t payload_bytes) {
  // The payload layout and serialized_size are one source of truth only if they agree.
  FHEML_ASSERT_EQ(w.size(), kEnvelopeHeaderBytes + payload_bytes);
  w.bytes(checksum(w.data()));
  return w.take();
}

// --- Dimension limits -------------------------------------------------------------------------

void check_range(const std::string& context, const char* what, std::uint64_t value,
                 std::uint64_t low, std::uint64_t high) {
  if (value < low || value > high) {
    fail(context, std::string(what) + " " + std::to_string(value) + " is out of range: expected " +
                      std::to_string(low) + ".." + std::to_string(high) +
                      "; the object is corrupt or was not written by fheml");
  }
}

void check_lwe_dimension(const std::string& context, const char* what, std::uint64_t n) {
  check_range(context, what, n, 1, kMaxLweDimension);
}

void check_glwe(const std::string& context, std::uint64_t k, std::uint64_t n) {
  check_range(context, "GLWE dimension k", k, 1, kMaxGlweDimension);
  if (!std::has_single_bit(n) || n < kMinPolynomialSize || n > kMaxPolynomialSize) {
    fail(context, "polynomial size N " + std::to_string(n) +
                      " is invalid: expected a power of two in " +
                      std::to_string(kMinPolynomialSize) + ".." +
                      std::to_string(kMaxPolynomialSize) + "; the object is corrupt");
  }
}

void check_decomposition(const std::string& context, const char* what, std::uint64_t base_log,
                         std::uint64_t level) {
  // Also what Decomposer accepts: the gadget q / B^level must stay a nonzero power of two, and
  // digits must fit the FFT's |x| <= 2^31.
  if (base_log < 1 || level < 1 || base_log > 32 || level >= 64 || base_log * level >= 64) {
    fail(context, std::string(what) + " decomposition base_log " + std::to_string(base_log) +
                      " x level " + std::to_string(level) +
                      " is invalid: expected 1 <= base_log <= 32, level >= 1, base_log * level "
                      "< 64; the object is corrupt");
  }
}

std::uint64_t read_count(Reader& r, std::uint64_t fixed_bytes, std::uint64_t bytes_per_item,
                         const char* what) {
  const std::uint64_t count = r.u64();
  if (r.remaining() < fixed_bytes || count > (r.remaining() - fixed_bytes) / bytes_per_item) {
    fail(r.context(), std::string(what) + " count " + std::to_string(count) +
                          " needs more bytes than the payload has (" +
                          std::to_string(r.remaining()) + "); the object is corrupt");
  }
  return count;
}

// --- PbsParameters ----------------------------------------------------------------------------

void write_parameters(Writer& w, const PbsParameters& p) {
  w.u64(p.lwe_dimension.value);
  w.u64(p.glwe_dimension.value);
  w.u64(p.polynomial_size.value);
  w.f64(p.lwe_noise.value);
  w.f64(p.glwe_noise.value);
  w.u64(p.pbs_base_log.value);
  w.u64(p.pbs_level.value);
  w.u64(p.ks_base_log.value);
  w.u64(p.ks_level.value);
  w.u64(p.extension_log);
}

namespace {

void check_noise(const std::string& context, const char* what, double std) {
  if (!std::isfinite(std) || std < 0.0 || std >= 1.0) {
    fail(context, std::string(what) + " noise standard deviation " + std::to_string(std) +
                      " is invalid: expected a finite torus fraction in [0, 1); the parameters "
                      "are corrupt");
  }
}

}  // namespace

// Reads and validates the parameters, and ties them to the header's fingerprint.
PbsParameters read_parameters(Reader& r, std::uint64_t header_fingerprint, SecurityCheck check) {
  PbsParameters p{};
  p.lwe_dimension = LweDimension{r.u64()};
  p.glwe_dimension = GlweDimension{r.u64()};
  p.polynomial_size = PolynomialSize{r.u64()};
  p.lwe_noise = NoiseStdDev{r.f64()};
  p.glwe_noise = NoiseStdDev{r.f64()};
  p.pbs_base_log = DecompositionBaseLog{r.u64()};
  p.pbs_level = DecompositionLevelCount{r.u64()};
  p.ks_base_log = DecompositionBaseLog{r.u64()};
  p.ks_level = DecompositionLevelCount{r.u64()};
  if (r.format_version() >= 3) p.extension_log = r.u64();
  const std::string& c = r.context();
  check_lwe_dimension(c, "LWE dimension n", p.lwe_dimension.value);
  check_glwe(c, p.glwe_dimension.value, p.polynomial_size.value);
  check_noise(c, "LWE", p.lwe_noise.value);
  check_noise(c, "GLWE", p.glwe_noise.value);
  check_decomposition(c, "bootstrap", p.pbs_base_log.value, p.pbs_level.value);
  check_decomposition(c, "key switching", p.ks_base_log.value, p.ks_level.value);
  if (fingerprint(p) != header_fingerprint) {
    fail(c, "parameter fingerprint in the header is " + u64_hex(header_fingerprint) +
                ", expected " + u64_hex(fingerprint(p)) +
                " for the parameters in the payload; the object is corrupt");
  }
  try {
    validate(p, check);
  } catch (const std::invalid_argument& e) {
    fail(c, e.what());
  }
  return p;
}

std::string parameters_mismatch(const PbsParameters& found, const PbsParameters& expected) {
  if (found == expected) return {};
  return "expected " + describe(expected) + ", found " + describe(found);
}

// --- Shapes -----------------------------------------------------------------------------------

void write_keyswitch_shape(Writer& w, const KeyswitchShape& s) {
  w.u64(s.input_dimension.value);
  w.u64(s.output_dimension.value);
  w.u64(s.base_log.value);
  w.u64(s.level.value);
  w.u64(s.shared_prefix);
}

KeyswitchShape read_keyswitch_shape(Reader& r) {
  KeyswitchShape s{LweDimension{r.u64()}, LweDimension{r.u64()}, DecompositionBaseLog{r.u64()},
                   DecompositionLevelCount{r.u64()}, 0};
  // Format 1 had no shared prefix: its keys switch every input coefficient.
  if (r.format_version() >= 2) s.shared_prefix = r.u64();
  check_lwe_dimension(r.context(), "key switching input dimension", s.input_dimension.value);
  check_lwe_dimension(r.context(), "key switching output dimension", s.output_dimension.value);
  check_decomposition(r.context(), "key switching", s.base_log.value, s.level.value);
  if ((s.shared_prefix != 0 && s.shared_prefix != s.output_dimension.value) ||
      s.shared_prefix > s.input_dimension.value) {
    fail(r.context(), "key switching shared prefix " + std::to_string(s.shared_prefix) +
                          ": must be 0 or the output dimension " +
                          std::to_string(s.output_dimension.value) +
                          ", and at most the input dimension; the data is corrupt");
  }
  return s;
}

void write_bootstrap_shape(Writer& w, const BootstrapShape& s) {
  w.u64(s.input_dimension.value);
  w.u64(s.ggsw.glwe_dimension.value);
  w.u64(s.ggsw.polynomial_size.value);
  w.u64(s.ggsw.base_log.value);
  w.u64(s.ggsw.level.value);
}

BootstrapShape read_bootstrap_shape(Reader& r) {
  BootstrapShape s{LweDimension{r.u64()},
                   GgswShape{GlweDimension{r.u64()}, PolynomialSize{r.u64()},
                             DecompositionBaseLog{r.u64()}, DecompositionLevelCount{r.u64()}}};
  check_lwe_dimension(r.context(), "bootstrap input dimension", s.input_dimension.value);
  check_glwe(r.context(), s.ggsw.glwe_dimension.value, s.ggsw.polynomial_size.value);
  check_decomposition(r.context(), "bootstrap", s.ggsw.base_log.value, s.ggsw.level.value);
  return s;
}

BootstrapShape bootstrap_shape_of(const PbsParameters& p) {
  return {p.lwe_dimension,
          GgswShape{p.glwe_dimension, p.polynomial_size, p.pbs_base_log, p.pbs_level}};
}

namespace {

std::string describe(const KeyswitchShape& s) {
  return "key switching key " + std::to_string(s.input_dimension.value) + " -> " +
         std::to_string(s.output_dimension.value) + " with 2^" + std::to_string(s.base_log.value) +
         " x " + std::to_string(s.level.value) +
         (s.shared_prefix != 0 ? " (first " + std::to_string(s.shared_prefix) + " shared)" : "");
}

std::string describe(const BootstrapShape& s) {
  return "bootstrap key n=" + std::to_string(s.input_dimension.value) +
         " k=" + std::to_string(s.ggsw.glwe_dimension.value) +
         " N=" + std::to_string(s.ggsw.polynomial_size.value) + " with 2^" +
         std::to_string(s.ggsw.base_log.value) + " x " + std::to_string(s.ggsw.level.value);
}

}  // namespace

std::string shape_mismatch(const KeyswitchShape& found, const KeyswitchShape& expected) {
  if (found == expected) return {};
  return "expected " + describe(expected) + ", found " + describe(found);
}

std::string shape_mismatch(const BootstrapShape& found, const BootstrapShape& expected) {
  if (found == expected) return {};
  return "expected " + describe(expected) + ", found " + describe(found);
}

std::uint64_t seeded_bootstrap_body_count(const BootstrapShape& s) {
  return s.input_dimension.value * s.ggsw.row_count() * s.ggsw.polynomial_size.value;
}

}  // namespace wire

std::string object_type_name(std::uint16_t type) {
  const wire::TypeInfo info = wire::type_info(type);
  return info.name != nullptr ? info.name : "unknown object type " + std::to_string(type);
}

EnvelopeInfo read_envelope_header(std::span<const std::uint8_t> bytes) {
  using namespace wire;
  if (bytes.size() < kEnvelopeHeaderBytes ||
      !std::equal(kMagic.begin(), kMagic.end(), bytes.begin())) {
    fail("read_envelope_header",
         "expected an fheml header (" + std::to_string(kEnvelopeHeaderBytes) +
             " bytes starting with " + hex(kMagic) + "), found " + std::to_string(bytes.size()) +
             " bytes that are not one; pass serialize() output");
  }
  return {le_u16(bytes, 8), le_u16(bytes, 10), le_u64(bytes, 12), le_u64(bytes, 20)};
}

}  // namespace fheml::tfhe
