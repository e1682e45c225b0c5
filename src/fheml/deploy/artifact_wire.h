// Private to deploy/ (not installed): the envelope and field helpers that the artifact
// serializers share (artifacts.cpp: circuits and client specs; artifact_payloads.cpp: keys and
// ciphertexts).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fheml/compiler/circuit.h"
#include "fheml/deploy/artifacts.h"
#include "fheml/tfhe/serialization.h"
#include "fheml/tfhe/wire.h"

namespace fheml::deploy::wire_detail {

using tfhe::ObjectType;
using tfhe::wire::fail;
using tfhe::wire::Reader;
using tfhe::wire::Writer;

// Key switches between big keys: at most one per (source, target) pair of partitions.
inline constexpr std::uint64_t kMaxKeyswitchPairs =
    compiler::kMaxPartitions * compiler::kMaxPartitions;

inline std::uint64_t read_flag(Reader& r, const char* what) {
  const std::uint64_t v = r.u64();
  if (v > 1) fail(r.context(), std::string(what) + " must be 0 or 1, found " + std::to_string(v));
  return v;
}

inline void read_version(Reader& r) {
  const std::uint64_t v = r.u64();
  if (v != kArtifactFormatVersion) {
    fail(r.context(), "artifact format version " + std::to_string(v) + ", this fheml reads " +
                          std::to_string(kArtifactFormatVersion) +
                          "; save the model again with this version of fheml (or load it with "
                          "the version that wrote it)");
  }
}

inline std::uint32_t read_index(Reader& r, std::uint64_t bound, const char* what) {
  const std::uint64_t v = r.u64();
  if (v >= bound) {
    fail(r.context(), std::string(what) + " " + std::to_string(v) + " out of range (below " +
                          std::to_string(bound) + " expected)");
  }
  return static_cast<std::uint32_t>(v);
}

// --- Envelopes.

inline std::vector<std::uint8_t> seal(ObjectType type, std::uint64_t fingerprint,
                                      Writer&& payload) {
  const std::vector<std::uint8_t> body = payload.take();
  Writer w = tfhe::wire::begin_envelope(type, fingerprint, body.size());
  w.bytes(body);
  return tfhe::wire::finish_envelope(std::move(w), body.size());
}

inline tfhe::DeserializeOptions with_default_limit(tfhe::DeserializeOptions options,
                                                   std::uint64_t limit) {
  options.max_bytes = std::min(options.max_bytes, limit);
  return options;
}

// Parses the payload of `bytes` with `parse`, then requires it consumed exactly.
template <class Parse>
inline auto open_payload(std::span<const std::uint8_t> bytes, ObjectType type,
                         const tfhe::DeserializeOptions& options, Parse parse) {
  const std::string context = tfhe::wire::loader_name(type);
  const tfhe::wire::Opened envelope = tfhe::wire::open_envelope(bytes, type, options, context);
  Reader reader(envelope.payload, context, envelope.version);
  read_version(reader);
  auto value = parse(reader, envelope.fingerprint);
  reader.require_remaining(0, "fields after the last one");
  return value;
}

inline tfhe::SecurityCheck security_of(const tfhe::DeserializeOptions& options) {
  return options.unsafe_allow_insecure_parameters ? tfhe::SecurityCheck::kUnsafeAllowInsecure
                                                  : tfhe::SecurityCheck::kRequire128;
}

inline void write_nested(Writer& w, const std::vector<std::uint8_t>& inner) {
  w.u64(inner.size());
  w.bytes(inner);
}

inline std::span<const std::uint8_t> read_nested(Reader& r, const char* what) {
  const std::uint64_t size = tfhe::wire::read_count(r, 0, 1, what);
  return r.bytes(size);
}

}  // namespace fheml::deploy::wire_detail
