// Payload layouts (after the envelope header; u64 = 8 bytes little-endian, "bits" = one byte per
// secret key coefficient, 0 or 1):
//   PbsParameters            n, k, N, lwe_noise (f64 bits), glwe_noise (f64 bits),
//                            pbs_base_log, pbs_level, ks_base_log, ks_level,
//                            extension_log (format 3 on)                       (10 x u64)
//   LweSecretKey             n, bits[n]
//   GlweSecretKey            k, N, bits[k*N]
//   ClientKey                PbsParameters payload, bits[n] (small key), bits[k*N] (GLWE key)
//   LweCiphertext            n, u64[n+1]
//   LweCiphertextList        n, count, u64[count*(n+1)]
//   SeededLweCiphertextList  n, count, seed[32], u64[count]
//   GlweCiphertext           k, N, u64[(k+1)*N]
//   KeyswitchShape           n_in, n_out, base_log, level                          (4 x u64)
//   KeyswitchKey             KeyswitchShape, u64[n_in*level*(n_out+1)]
//   SeededKeyswitchKey       KeyswitchShape, seed[32], u64[n_in*level]
//   BootstrapShape           n, k, N, base_log, level                              (5 x u64)
//   BootstrapKey             BootstrapShape, u64[n*(k+1)*level*(k+1)*N]
//   SeededBootstrapKey       BootstrapShape, seed[32], u64[n*(k+1)*level*N]
//   CompressedServerKey      PbsParameters payload, SeededKeyswitchKey payload,
//                            SeededBootstrapKey payload (shapes must agree with the parameters)
#include "fheml/tfhe/serialization.h"

#include <string>
#include <utility>

#include "fheml/tfhe/errors.h"
#include "fheml/tfhe/wire.h"

namespace fheml::tfhe {
namespace {

using wire::check_decomposition;
using wire::check_glwe;
using wire::check_lwe_dimension;
using wire::fail;
using wire::u64_hex;

using wire::bootstrap_shape_of;
using wire::kBootstrapShapeBytes;
using wire::kKeyswitchShapeBytes;
using wire::kParametersPayloadBytes;
using wire::parameters_mismatch;
using wire::read_bootstrap_shape;
using wire::read_keyswitch_shape;
using wire::read_parameters;

SecurityCheck security_check(const DeserializeOptions& options) {
  return options.unsafe_allow_insecure_parameters ? SecurityCheck::kUnsafeAllowInsecure
                                                  : SecurityCheck::kRequire128;
}
using wire::seeded_bootstrap_body_count;
using wire::shape_mismatch;
using wire::write_bootstrap_shape;
using wire::write_keyswitch_shape;
using wire::write_parameters;

template <class WriteFn>
std::vector<std::uint8_t> seal(ObjectType type, std::uint64_t fp, std::uint64_t payload_bytes,
                               WriteFn write_payload) {
  wire::Writer w = wire::begin_envelope(type, fp, payload_bytes);
  write_payload(w);
  return wire::finish_envelope(std::move(w), payload_bytes);
}

// Ciphertexts live under the big key (k*N) between operations and under the small key (n) after
// a key switch: both are legitimate for a parameter set.
std::string lwe_dimension_mismatch(LweDimension found, const PbsParameters& p) {
  const LweDimension big = extracted_lwe_dimension(p.glwe_dimension, p.polynomial_size);
  if (found == big || found == p.lwe_dimension) return {};
  return "expected LWE dimension " + std::to_string(big.value) + " (k*N) or " +
         std::to_string(p.lwe_dimension.value) + " (n), found " + std::to_string(found.value);
}

std::string glwe_mismatch(GlweDimension k, PolynomialSize n, const PbsParameters& p) {
  if (k == p.glwe_dimension && n == p.polynomial_size) return {};
  return "expected k=" + std::to_string(p.glwe_dimension.value) +
         " N=" + std::to_string(p.polynomial_size.value) + ", found k=" + std::to_string(k.value) +
         " N=" + std::to_string(n.value);
}

// Parses the envelope and payload of one object type into a temporary, then checks it against
// the expected parameters; returns only when everything passed.
template <class T, class ParseFn, class MismatchFn>
T load(std::span<const std::uint8_t> bytes, ObjectType type, const DeserializeOptions& options,
       ParseFn parse, MismatchFn mismatch) {
  const std::string context = wire::loader_name(type);
  const wire::Opened envelope = wire::open_envelope(bytes, type, options, context);
  wire::Reader reader(envelope.payload, context, envelope.version);
  T value = parse(reader, envelope.fingerprint);
  // The parsers already checked the exact size; a backstop against a parser that reads too little.
  reader.require_remaining(0, "fields after the last one");
  if (options.expected_parameters != nullptr) {
    const std::string problem = mismatch(value, *options.expected_parameters);
    if (!problem.empty()) {
      fail(context, "does not match the expected parameters: " + problem +
                        "; load it with the parameter set it was made for");
    }
  }
  return value;
}

// The fingerprint a bare object (no parameters of its own) is stamped with, after checking it
// fits the parameters the caller binds it to.
template <class T, class MismatchFn>
std::uint64_t bound_fingerprint(const T& value, const SerializeOptions& options,
                                MismatchFn mismatch) {
  if (options.parameters == nullptr) return 0;
  const std::string problem = mismatch(value, *options.parameters);
  if (!problem.empty()) {
    throw_invalid_argument("fheml serialize: object does not fit the parameters it is bound to: " +
                           problem + "; bind it to the parameters it was made for");
  }
  return fingerprint(*options.parameters);
}

// --- Per-type payloads ------------------------------------------------------------------------

std::uint64_t payload_size(const LweSecretKey& v) { return 8 + v.bits.size(); }
std::uint64_t payload_size(const GlweSecretKey& v) { return 16 + v.bits.size(); }
std::uint64_t payload_size(const ClientKey& v) {
  return kParametersPayloadBytes + v.small_key.bits.size() + v.glwe_key.bits.size();
}
std::uint64_t payload_size(const LweCiphertext& v) { return 8 + 8 * v.data.size(); }
std::uint64_t payload_size(const LweCiphertextList& v) { return 16 + 8 * v.data.size(); }
std::uint64_t payload_size(const SeededLweCiphertextList& v) {
  return 16 + kSeedBytes + 8 * v.bodies.size();
}
std::uint64_t payload_size(const GlweCiphertext& v) { return 16 + 8 * v.data.size(); }
std::uint64_t payload_size(const KeyswitchKey& v) {
  return kKeyswitchShapeBytes + 8 * v.data.size();
}
std::uint64_t payload_size(const SeededKeyswitchKey& v) {
  return kKeyswitchShapeBytes + kSeedBytes + 8 * v.bodies.size();
}
std::uint64_t payload_size(const BootstrapKey& v) {
  return kBootstrapShapeBytes + 8 * v.data.size();
}
std::uint64_t payload_size(const SeededBootstrapKey& v) {
  return kBootstrapShapeBytes + kSeedBytes + 8 * v.bodies.size();
}
std::uint64_t payload_size(const CompressedServerKey& v) {
  return kParametersPayloadBytes + payload_size(v.keyswitch_key) + payload_size(v.bootstrap_key);
}

void write_seeded_keyswitch_key(wire::Writer& w, const SeededKeyswitchKey& v) {
  FHEML_ASSERT_EQ(v.bodies.size(), v.shape.entry_count());
  write_keyswitch_shape(w, v.shape);
  w.bytes(v.seed);
  w.words(v.bodies);
}

SeededKeyswitchKey read_seeded_keyswitch_body(wire::Reader& r, const KeyswitchShape& shape) {
  SeededKeyswitchKey v{shape, r.seed(), {}};
  v.bodies = r.words(shape.entry_count());
  return v;
}

void write_seeded_bootstrap_key(wire::Writer& w, const SeededBootstrapKey& v) {
  FHEML_ASSERT_EQ(v.bodies.size(), seeded_bootstrap_body_count(v.shape));
  write_bootstrap_shape(w, v.shape);
  w.bytes(v.seed);
  w.words(v.bodies);
}

SeededBootstrapKey read_seeded_bootstrap_body(wire::Reader& r, const BootstrapShape& shape) {
  SeededBootstrapKey v{shape, r.seed(), {}};
  v.bodies = r.words(seeded_bootstrap_body_count(shape));
  return v;
}

auto lwe_key_mismatch = [](const LweSecretKey& v, const PbsParameters& p) {
  return lwe_dimension_mismatch(v.dimension(), p);
};
auto glwe_key_mismatch = [](const GlweSecretKey& v, const PbsParameters& p) {
  return glwe_mismatch(v.glwe_dimension, v.polynomial_size, p);
};
auto lwe_ciphertext_mismatch = [](const LweCiphertext& v, const PbsParameters& p) {
  return lwe_dimension_mismatch(v.dimension(), p);
};
auto lwe_list_mismatch = [](const LweCiphertextList& v, const PbsParameters& p) {
  return lwe_dimension_mismatch(v.dimension, p);
};
auto seeded_list_mismatch = [](const SeededLweCiphertextList& v, const PbsParameters& p) {
  return lwe_dimension_mismatch(v.dimension, p);
};
auto glwe_ciphertext_mismatch = [](const GlweCiphertext& v, const PbsParameters& p) {
  return glwe_mismatch(v.glwe_dimension, v.polynomial_size, p);
};
// A key of format 1 (no shared prefix) still fits its parameters.
KeyswitchShape expected_keyswitch_shape(const KeyswitchShape& found, const PbsParameters& p) {
  KeyswitchShape expected = keyswitch_shape_of(p);
  if (found.shared_prefix == 0) expected.shared_prefix = 0;
  return expected;
}
template <class Key>
std::string keyswitch_key_mismatch(const Key& v, const PbsParameters& p) {
  return shape_mismatch(v.shape, expected_keyswitch_shape(v.shape, p));
}
template <class Key>
std::string bootstrap_key_mismatch(const Key& v, const PbsParameters& p) {
  return shape_mismatch(v.shape, bootstrap_shape_of(p));
}

}  // namespace

// --- PbsParameters

std::vector<std::uint8_t> serialize(const PbsParameters& v) {
  return seal(ObjectType::kPbsParameters, fingerprint(v), kParametersPayloadBytes,
              [&](wire::Writer& w) { write_parameters(w, v); });
}
std::size_t serialized_size(const PbsParameters&) {
  return kEnvelopeOverheadBytes + kParametersPayloadBytes;
}
PbsParameters deserialize_pbs_parameters(std::span<const std::uint8_t> bytes,
                                         const DeserializeOptions& options) {
  return load<PbsParameters>(
      bytes, ObjectType::kPbsParameters, options,
      [&options](wire::Reader& r, std::uint64_t fp) {
        r.require_remaining(wire::parameters_payload_bytes(r.format_version()), "parameters");
        return read_parameters(r, fp, security_check(options));
      },
      parameters_mismatch);
}

// --- LweSecretKey

std::vector<std::uint8_t> serialize(const LweSecretKey& v, const SerializeOptions& options) {
  return seal(ObjectType::kLweSecretKey, bound_fingerprint(v, options, lwe_key_mismatch),
              payload_size(v), [&](wire::Writer& w) {
                w.u64(v.bits.size());
                w.bits_as_bytes(v.bits);
              });
}
std::size_t serialized_size(const LweSecretKey& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
LweSecretKey deserialize_lwe_secret_key(std::span<const std::uint8_t> bytes,
                                        const DeserializeOptions& options) {
  return load<LweSecretKey>(
      bytes, ObjectType::kLweSecretKey, options,
      [](wire::Reader& r, std::uint64_t) {
        const std::uint64_t n = r.u64();
        check_lwe_dimension(r.context(), "LWE dimension", n);
        r.require_remaining(n, "n key coefficients");
        return LweSecretKey{r.bits(n, "LWE")};
      },
      lwe_key_mismatch);
}

// --- GlweSecretKey

std::vector<std::uint8_t> serialize(const GlweSecretKey& v, const SerializeOptions& options) {
  FHEML_ASSERT_EQ(v.bits.size(), v.glwe_dimension.value * v.polynomial_size.value);
  return seal(ObjectType::kGlweSecretKey, bound_fingerprint(v, options, glwe_key_mismatch),
              payload_size(v), [&](wire::Writer& w) {
                w.u64(v.glwe_dimension.value);
                w.u64(v.polynomial_size.value);
                w.bits_as_bytes(v.bits);
              });
}
std::size_t serialized_size(const GlweSecretKey& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
GlweSecretKey deserialize_glwe_secret_key(std::span<const std::uint8_t> bytes,
                                          const DeserializeOptions& options) {
  return load<GlweSecretKey>(
      bytes, ObjectType::kGlweSecretKey, options,
      [](wire::Reader& r, std::uint64_t) {
        const std::uint64_t k = r.u64();
        const std::uint64_t n = r.u64();
        check_glwe(r.context(), k, n);
        r.require_remaining(k * n, "k*N key coefficients");
        return GlweSecretKey{GlweDimension{k}, PolynomialSize{n}, r.bits(k * n, "GLWE")};
      },
      glwe_key_mismatch);
}

// --- ClientKey

std::vector<std::uint8_t> serialize(const ClientKey& v) {
  const PbsParameters& p = v.parameters;
  FHEML_ASSERT_EQ(v.small_key.bits.size(), p.lwe_dimension.value);
  FHEML_ASSERT_EQ(v.glwe_key.glwe_dimension.value, p.glwe_dimension.value);
  FHEML_ASSERT_EQ(v.glwe_key.polynomial_size.value, p.polynomial_size.value);
  FHEML_ASSERT_EQ(v.glwe_key.bits.size(), p.glwe_dimension.value * p.polynomial_size.value);
  return seal(ObjectType::kClientKey, fingerprint(p), payload_size(v), [&](wire::Writer& w) {
    write_parameters(w, p);
    w.bits_as_bytes(v.small_key.bits);
    w.bits_as_bytes(v.glwe_key.bits);
  });
}
std::size_t serialized_size(const ClientKey& v) { return kEnvelopeOverheadBytes + payload_size(v); }
ClientKey deserialize_client_key(std::span<const std::uint8_t> bytes,
                                 const DeserializeOptions& options) {
  return load<ClientKey>(
      bytes, ObjectType::kClientKey, options,
      [&options](wire::Reader& r, std::uint64_t fp) {
        ClientKey key{read_parameters(r, fp, security_check(options)), {}, {}};
        const PbsParameters& p = key.parameters;
        const std::uint64_t big = p.glwe_dimension.value * p.polynomial_size.value;
        r.require_remaining(p.lwe_dimension.value + big, "n + k*N key coefficients");
        key.small_key = LweSecretKey{r.bits(p.lwe_dimension.value, "small LWE")};
        key.glwe_key = GlweSecretKey{p.glwe_dimension, p.polynomial_size, r.bits(big, "GLWE")};
        // Format 1 keys have independent small keys: they still decrypt, and evaluation keys
        // are no longer made from them (check_shared_prefix). A format 2 key must share.
        if (r.format_version() >= 2) {
          try {
            check_shared_prefix(key);
          } catch (const std::invalid_argument& e) {
            fail(r.context(), e.what());
          }
        }
        return key;
      },
      [](const ClientKey& v, const PbsParameters& p) {
        return parameters_mismatch(v.parameters, p);
      });
}

// --- LweCiphertext

std::vector<std::uint8_t> serialize(const LweCiphertext& v, const SerializeOptions& options) {
  FHEML_ASSERT_EQ(v.data.empty(), false);  // a ciphertext has at least its body
  return seal(ObjectType::kLweCiphertext, bound_fingerprint(v, options, lwe_ciphertext_mismatch),
              payload_size(v), [&](wire::Writer& w) {
                w.u64(v.dimension().value);
                w.words(v.data);
              });
}
std::size_t serialized_size(const LweCiphertext& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
LweCiphertext deserialize_lwe_ciphertext(std::span<const std::uint8_t> bytes,
                                         const DeserializeOptions& options) {
  return load<LweCiphertext>(
      bytes, ObjectType::kLweCiphertext, options,
      [](wire::Reader& r, std::uint64_t) {
        const std::uint64_t n = r.u64();
        check_lwe_dimension(r.context(), "LWE dimension", n);
        r.require_remaining(8 * (n + 1), "n+1 ciphertext words");
        LweCiphertext ct;
        ct.data = r.words(n + 1);
        return ct;
      },
      lwe_ciphertext_mismatch);
}

// --- LweCiphertextList

std::vector<std::uint8_t> serialize(const LweCiphertextList& v, const SerializeOptions& options) {
  FHEML_ASSERT_EQ(v.data.size() % lwe_size(v.dimension), 0u);
  return seal(ObjectType::kLweCiphertextList, bound_fingerprint(v, options, lwe_list_mismatch),
              payload_size(v), [&](wire::Writer& w) {
                w.u64(v.dimension.value);
                w.u64(v.count());
                w.words(v.data);
              });
}
std::size_t serialized_size(const LweCiphertextList& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
LweCiphertextList deserialize_lwe_ciphertext_list(std::span<const std::uint8_t> bytes,
                                                  const DeserializeOptions& options) {
  return load<LweCiphertextList>(
      bytes, ObjectType::kLweCiphertextList, options,
      [](wire::Reader& r, std::uint64_t) {
        const std::uint64_t n = r.u64();
        check_lwe_dimension(r.context(), "LWE dimension", n);
        const std::uint64_t count = wire::read_count(r, 0, 8 * (n + 1), "ciphertext");
        r.require_remaining(8 * (n + 1) * count, "count*(n+1) ciphertext words");
        LweCiphertextList list;
        list.dimension = LweDimension{n};
        list.data = r.words((n + 1) * count);
        return list;
      },
      lwe_list_mismatch);
}

// --- SeededLweCiphertextList

std::vector<std::uint8_t> serialize(const SeededLweCiphertextList& v,
                                    const SerializeOptions& options) {
  return seal(ObjectType::kSeededLweCiphertextList,
              bound_fingerprint(v, options, seeded_list_mismatch), payload_size(v),
              [&](wire::Writer& w) {
                w.u64(v.dimension.value);
                w.u64(v.count());
                w.bytes(v.seed);
                w.words(v.bodies);
              });
}
std::size_t serialized_size(const SeededLweCiphertextList& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
SeededLweCiphertextList deserialize_seeded_lwe_ciphertext_list(std::span<const std::uint8_t> bytes,
                                                               const DeserializeOptions& options) {
  return load<SeededLweCiphertextList>(
      bytes, ObjectType::kSeededLweCiphertextList, options,
      [](wire::Reader& r, std::uint64_t) {
        SeededLweCiphertextList list;
        list.dimension = LweDimension{r.u64()};
        check_lwe_dimension(r.context(), "LWE dimension", list.dimension.value);
        const std::uint64_t count = wire::read_count(r, kSeedBytes, 8, "ciphertext");
        r.require_remaining(kSeedBytes + 8 * count, "seed + count bodies");
        list.seed = r.seed();
        list.bodies = r.words(count);
        return list;
      },
      seeded_list_mismatch);
}

// --- GlweCiphertext

std::vector<std::uint8_t> serialize(const GlweCiphertext& v, const SerializeOptions& options) {
  FHEML_ASSERT_EQ(v.data.size(), glwe_size(v.glwe_dimension) * v.polynomial_size.value);
  return seal(ObjectType::kGlweCiphertext, bound_fingerprint(v, options, glwe_ciphertext_mismatch),
              payload_size(v), [&](wire::Writer& w) {
                w.u64(v.glwe_dimension.value);
                w.u64(v.polynomial_size.value);
                w.words(v.data);
              });
}
std::size_t serialized_size(const GlweCiphertext& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
GlweCiphertext deserialize_glwe_ciphertext(std::span<const std::uint8_t> bytes,
                                           const DeserializeOptions& options) {
  return load<GlweCiphertext>(
      bytes, ObjectType::kGlweCiphertext, options,
      [](wire::Reader& r, std::uint64_t) {
        const std::uint64_t k = r.u64();
        const std::uint64_t n = r.u64();
        check_glwe(r.context(), k, n);
        r.require_remaining(8 * (k + 1) * n, "(k+1)*N ciphertext words");
        GlweCiphertext ct;
        ct.glwe_dimension = GlweDimension{k};
        ct.polynomial_size = PolynomialSize{n};
        ct.data = r.words((k + 1) * n);
        return ct;
      },
      glwe_ciphertext_mismatch);
}

// --- KeyswitchKey / SeededKeyswitchKey

std::vector<std::uint8_t> serialize(const KeyswitchKey& v, const SerializeOptions& options) {
  FHEML_ASSERT_EQ(v.data.size(), v.shape.length());
  return seal(ObjectType::kKeyswitchKey,
              bound_fingerprint(v, options, keyswitch_key_mismatch<KeyswitchKey>), payload_size(v),
              [&](wire::Writer& w) {
                write_keyswitch_shape(w, v.shape);
                w.words(v.data);
              });
}
std::size_t serialized_size(const KeyswitchKey& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
KeyswitchKey deserialize_keyswitch_key(std::span<const std::uint8_t> bytes,
                                       const DeserializeOptions& options) {
  return load<KeyswitchKey>(
      bytes, ObjectType::kKeyswitchKey, options,
      [](wire::Reader& r, std::uint64_t) {
        const KeyswitchShape shape = read_keyswitch_shape(r);
        r.require_remaining(8 * shape.length(), "key switching key words");
        return KeyswitchKey{shape, r.words(shape.length())};
      },
      keyswitch_key_mismatch<KeyswitchKey>);
}

std::vector<std::uint8_t> serialize(const SeededKeyswitchKey& v, const SerializeOptions& options) {
  return seal(ObjectType::kSeededKeyswitchKey,
              bound_fingerprint(v, options, keyswitch_key_mismatch<SeededKeyswitchKey>),
              payload_size(v), [&](wire::Writer& w) { write_seeded_keyswitch_key(w, v); });
}
std::size_t serialized_size(const SeededKeyswitchKey& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
SeededKeyswitchKey deserialize_seeded_keyswitch_key(std::span<const std::uint8_t> bytes,
                                                    const DeserializeOptions& options) {
  return load<SeededKeyswitchKey>(
      bytes, ObjectType::kSeededKeyswitchKey, options,
      [](wire::Reader& r, std::uint64_t) {
        const KeyswitchShape shape = read_keyswitch_shape(r);
        r.require_remaining(kSeedBytes + 8 * shape.entry_count(), "seed + key switching bodies");
        return read_seeded_keyswitch_body(r, shape);
      },
      keyswitch_key_mismatch<SeededKeyswitchKey>);
}

// --- BootstrapKey / SeededBootstrapKey

std::vector<std::uint8_t> serialize(const BootstrapKey& v, const SerializeOptions& options) {
  FHEML_ASSERT_EQ(v.data.size(), v.shape.length());
  return seal(ObjectType::kBootstrapKey,
              bound_fingerprint(v, options, bootstrap_key_mismatch<BootstrapKey>), payload_size(v),
              [&](wire::Writer& w) {
                write_bootstrap_shape(w, v.shape);
                w.words(v.data);
              });
}
std::size_t serialized_size(const BootstrapKey& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
BootstrapKey deserialize_bootstrap_key(std::span<const std::uint8_t> bytes,
                                       const DeserializeOptions& options) {
  return load<BootstrapKey>(
      bytes, ObjectType::kBootstrapKey, options,
      [](wire::Reader& r, std::uint64_t) {
        const BootstrapShape shape = read_bootstrap_shape(r);
        r.require_remaining(8 * shape.length(), "bootstrap key words");
        return BootstrapKey{shape, r.words(shape.length())};
      },
      bootstrap_key_mismatch<BootstrapKey>);
}

std::vector<std::uint8_t> serialize(const SeededBootstrapKey& v, const SerializeOptions& options) {
  return seal(ObjectType::kSeededBootstrapKey,
              bound_fingerprint(v, options, bootstrap_key_mismatch<SeededBootstrapKey>),
              payload_size(v), [&](wire::Writer& w) { write_seeded_bootstrap_key(w, v); });
}
std::size_t serialized_size(const SeededBootstrapKey& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
SeededBootstrapKey deserialize_seeded_bootstrap_key(std::span<const std::uint8_t> bytes,
                                                    const DeserializeOptions& options) {
  return load<SeededBootstrapKey>(
      bytes, ObjectType::kSeededBootstrapKey, options,
      [](wire::Reader& r, std::uint64_t) {
        const BootstrapShape shape = read_bootstrap_shape(r);
        r.require_remaining(kSeedBytes + 8 * seeded_bootstrap_body_count(shape),
                            "seed + bootstrap bodies");
        return read_seeded_bootstrap_body(r, shape);
      },
      bootstrap_key_mismatch<SeededBootstrapKey>);
}

// --- CompressedServerKey

std::vector<std::uint8_t> serialize(const CompressedServerKey& v) {
  FHEML_ASSERT_EQ(
      v.keyswitch_key.shape == expected_keyswitch_shape(v.keyswitch_key.shape, v.parameters), true);
  FHEML_ASSERT_EQ(v.bootstrap_key.shape == bootstrap_shape_of(v.parameters), true);
  return seal(ObjectType::kCompressedServerKey, fingerprint(v.parameters), payload_size(v),
              [&](wire::Writer& w) {
                write_parameters(w, v.parameters);
                write_seeded_keyswitch_key(w, v.keyswitch_key);
                write_seeded_bootstrap_key(w, v.bootstrap_key);
              });
}
std::size_t serialized_size(const CompressedServerKey& v) {
  return kEnvelopeOverheadBytes + payload_size(v);
}
CompressedServerKey deserialize_compressed_server_key(std::span<const std::uint8_t> bytes,
                                                      const DeserializeOptions& options) {
  return load<CompressedServerKey>(
      bytes, ObjectType::kCompressedServerKey, options,
      [&options](wire::Reader& r, std::uint64_t fp) {
        CompressedServerKey key{read_parameters(r, fp, security_check(options)), {}, {}};
        // The shapes follow from the parameters: the exact size is known before reading them.
        // (Format 1 keys switch every coefficient: no shared prefix.)
        KeyswitchShape ks = keyswitch_shape_of(key.parameters);
        if (r.format_version() < 2) ks.shared_prefix = 0;
        const BootstrapShape bs = bootstrap_shape_of(key.parameters);
        r.require_remaining(wire::keyswitch_shape_bytes(r.format_version()) + kSeedBytes +
                                8 * ks.entry_count() + kBootstrapShapeBytes + kSeedBytes +
                                8 * seeded_bootstrap_body_count(bs),
                            "key switching and bootstrap keys");
        const std::string ks_problem = shape_mismatch(read_keyswitch_shape(r), ks);
        if (!ks_problem.empty()) fail(r.context(), "key switching key shape " + ks_problem);
        key.keyswitch_key = read_seeded_keyswitch_body(r, ks);
        const std::string bs_problem = shape_mismatch(read_bootstrap_shape(r), bs);
        if (!bs_problem.empty()) fail(r.context(), "bootstrap key shape " + bs_problem);
        key.bootstrap_key = read_seeded_bootstrap_body(r, bs);
        return key;
      },
      [](const CompressedServerKey& v, const PbsParameters& p) {
        return parameters_mismatch(v.parameters, p);
      });
}

}  // namespace fheml::tfhe
