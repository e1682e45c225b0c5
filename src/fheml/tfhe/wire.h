// Byte-level building blocks of the serialized format: a little-endian writer, a bounds-checked
// reader, and the envelope checksum. Integers are written byte by byte (never by copying a
// struct or a native word), so a blob written on one CPU architecture reads the same on another.
//
// Internal to serialization.cpp, the tests and the fuzz targets; user code goes through
// serialization.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fheml/tfhe/bootstrap.h"
#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/keyswitch.h"
#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/secret.h"
#include "fheml/tfhe/serialization.h"

namespace fheml::tfhe::wire {

inline constexpr std::size_t kChecksumBytes = 16;  // BLAKE2b-128

// BLAKE2b-128 of `bytes` (header plus payload). Catches accidental corruption that a range check
// cannot (any 64-bit torus word is valid); it is not a MAC and does not authenticate the sender.
std::array<std::uint8_t, kChecksumBytes> checksum(std::span<const std::uint8_t> bytes);

class Writer {
 public:
  explicit Writer(std::size_t reserve_bytes = 0) { bytes_.reserve(reserve_bytes); }
  void u16(std::uint16_t v);
  void u64(std::uint64_t v);
  void f64(double v);  // IEEE-754 bit pattern, so the value round-trips exactly
  void bytes(std::span<const std::uint8_t> v);
  void words(std::span<const std::uint64_t> v);
  // One byte per binary secret key coefficient: 8x smaller than words, and a byte still leaves
  // room to detect (and refuse) a coefficient that is not 0 or 1.
  void bits_as_bytes(std::span<const std::uint64_t> bits);
  std::size_t size() const { return bytes_.size(); }
  std::vector<std::uint8_t>& data() { return bytes_; }
  std::vector<std::uint8_t> take() { return std::move(bytes_); }

 private:
  std::vector<std::uint8_t> bytes_;
};

// Reads from a span whose length has already been validated; every read is still checked, and
// a read past the end throws DeserializationError mentioning `context` rather than overrunning.
class Reader {
 public:
  // format_version: the envelope's (layouts that changed read the old form for old objects).
  Reader(std::span<const std::uint8_t> bytes, std::string context,
         std::uint16_t format_version = kSerializationFormatVersion)
      : bytes_(bytes), context_(std::move(context)), format_version_(format_version) {}
  std::uint16_t u16();
  std::uint64_t u64();
  double f64();
  Seed seed();
  std::size_t remaining() const { return bytes_.size() - position_; }
  // Throws unless exactly `expected` bytes remain: the size implied by the dimensions read so
  // far must equal what the payload holds, checked before anything of that size is allocated.
  void require_remaining(std::uint64_t expected, const char* what) const;
  std::vector<std::uint64_t> words(std::size_t count);
  // The next `count` raw bytes (a view into the input; read_count bounds the count first).
  std::span<const std::uint8_t> bytes(std::size_t count) { return take(count); }
  // Secret key coefficients, one byte each; anything but 0 or 1 is refused.
  SecretWords bits(std::size_t count, const char* what);
  const std::string& context() const { return context_; }
  std::uint16_t format_version() const { return format_version_; }

 private:
  std::span<const std::uint8_t> take(std::size_t count);
  std::span<const std::uint8_t> bytes_;
  std::size_t position_ = 0;
  std::string context_;
  std::uint16_t format_version_;
};

// --- Envelope (layout in serialization.h) ---

// "deserialize_lwe_ciphertext", ... : the loader of a type, named in messages.
const char* loader_name(ObjectType type);

// Throws DeserializationError "fheml <context>: <message>".
[[noreturn]] void fail(const std::string& context, const std::string& message);

// "0x0123456789abcdef", for fingerprints in messages.
std::string u64_hex(std::uint64_t v);

struct Opened {
  std::uint64_t fingerprint;
  std::span<const std::uint8_t> payload;
  std::uint16_t version;
};

// Checks everything the header and checksum can tell (magic, version, type, fingerprint against
// the expected parameters, declared length against max_bytes and against the bytes present,
// checksum) before anything is allocated, and returns the payload.
Opened open_envelope(std::span<const std::uint8_t> bytes, ObjectType expected,
                     const DeserializeOptions& options, const std::string& context);

// Writes the header; the caller appends exactly `payload_bytes` and calls finish_envelope.
Writer begin_envelope(ObjectType type, std::uint64_t fingerprint, std::uint64_t payload_bytes);
std::vector<std::uint8_t> finish_envelope(Writer&& writer, std::uint64_t payload_bytes);

// --- Dimension limits: each throws DeserializationError naming `what`, the value and the range.

void check_range(const std::string& context, const char* what, std::uint64_t value,
                 std::uint64_t low, std::uint64_t high);
void check_lwe_dimension(const std::string& context, const char* what, std::uint64_t n);
// k in 1..kMaxGlweDimension, N a power of two in kMinPolynomialSize..kMaxPolynomialSize.
void check_glwe(const std::string& context, std::uint64_t k, std::uint64_t n);
// What Decomposer accepts: base_log >= 1, level >= 1, base_log * level < 64.
void check_decomposition(const std::string& context, const char* what, std::uint64_t base_log,
                         std::uint64_t level);
// Reads an item count that `fixed_bytes` plus count * `bytes_per_item` of the remaining payload
// must hold; refuses a count the payload cannot hold, without multiplying (no overflow).
std::uint64_t read_count(Reader& r, std::uint64_t fixed_bytes, std::uint64_t bytes_per_item,
                         const char* what);

// --- Sub-structures shared by several payloads (layouts in serialization.cpp) ---

// Formats 1 and 2 had nine fields, format 3 adds extension_log.
inline constexpr std::uint64_t parameters_payload_bytes(std::uint16_t format_version) {
  return (format_version >= 3 ? 10 : 9) * 8;
}
inline constexpr std::uint64_t kParametersPayloadBytes =
    parameters_payload_bytes(kSerializationFormatVersion);
// Format 1 had four fields, format 2 adds the shared prefix.
inline constexpr std::uint64_t keyswitch_shape_bytes(std::uint16_t format_version) {
  return (format_version >= 2 ? 5 : 4) * 8;
}
inline constexpr std::uint64_t kKeyswitchShapeBytes = keyswitch_shape_bytes(2);
inline constexpr std::uint64_t kBootstrapShapeBytes = 5 * 8;

void write_parameters(Writer& w, const PbsParameters& p);
// Reads and validates every field, and checks the header's fingerprint is theirs.
PbsParameters read_parameters(Reader& r, std::uint64_t header_fingerprint, SecurityCheck check);
void write_keyswitch_shape(Writer& w, const KeyswitchShape& s);
KeyswitchShape read_keyswitch_shape(Reader& r);  // validated
void write_bootstrap_shape(Writer& w, const BootstrapShape& s);
BootstrapShape read_bootstrap_shape(Reader& r);  // validated

// The shapes of the keys a parameter set implies.
BootstrapShape bootstrap_shape_of(const PbsParameters& p);
std::uint64_t seeded_bootstrap_body_count(const BootstrapShape& s);

// "" when equal, else "expected ..., found ..." for an error message.
std::string parameters_mismatch(const PbsParameters& found, const PbsParameters& expected);
std::string shape_mismatch(const KeyswitchShape& found, const KeyswitchShape& expected);
std::string shape_mismatch(const BootstrapShape& found, const BootstrapShape& expected);

}  // namespace fheml::tfhe::wire
