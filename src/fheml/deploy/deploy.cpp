#include "fheml/deploy/deploy.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "fheml/common/warnings.h"
#include "fheml/tfhe/secret.h"
#include "fheml/tfhe/serialization.h"

namespace fheml::deploy {

namespace fs = std::filesystem;

std::string hex_id(std::uint64_t id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, id >>= 4) s[static_cast<std::size_t>(i)] = kDigits[id & 15];
  return s;
}

namespace {

std::vector<std::uint8_t> as_bytes(const std::string& text) {
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

void check_circuit_id(std::uint64_t found, std::uint64_t expected, const char* what) {
  if (found != expected) {
    throw tfhe::DeserializationError(std::string(what) + " were made for circuit " + hex_id(found) +
                                     ", this model is circuit " + hex_id(expected) +
                                     ": use the client artifact of the model the server runs");
  }
}

// A buffer that held a serialized secret key, zeroed on every way out of the scope.
struct WipeOnExit {
  std::vector<std::uint8_t>& bytes;
  ~WipeOnExit() { tfhe::wipe(bytes); }
};

// Permission bits that let the group or others read, write or enter.
constexpr fs::perms kShared = fs::perms::group_all | fs::perms::others_all;

std::string octal_mode(fs::perms p) {
  char text[8];
  std::snprintf(text, sizeof text, "0%03o", static_cast<unsigned>(p & fs::perms::mask));
  return text;
}

}  // namespace

std::vector<std::uint8_t> read_file(const fs::path& path, std::uint64_t max_bytes) {
  std::error_code error;
  const std::uintmax_t size = fs::file_size(path, error);
  if (error) {
    throw std::invalid_argument("cannot read " + path.string() + ": " + error.message());
  }
  if (size > max_bytes) {
    throw std::invalid_argument(path.string() + " is " + std::to_string(size) +
                                " bytes, more than the " + std::to_string(max_bytes) + " accepted");
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  if (!in || !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    throw std::invalid_argument("cannot read " + path.string());
  }
  return bytes;
}

void write_file(const fs::path& path, std::span<const std::uint8_t> bytes, bool private_file,
                bool replace) {
  // A temporary name of this writer's own (16 random hex digits): writers of the same path in
  // other threads or processes (servers sharing one key store) never touch each other's file,
  // and the last rename wins with a whole file. A fixed name let one writer unlink and replace
  // another's half-written temporary, which the other then renamed into place.
  [[maybe_unused]] static const bool sodium_ready = sodium_init() >= 0;
  unsigned char nonce[8];
  randombytes_buf(nonce, sizeof nonce);
  std::string suffix = ".";
  for (const unsigned char b : nonce) {
    static constexpr char kHex[] = "0123456789abcdef";
    suffix += kHex[b >> 4];
    suffix += kHex[b & 15];
  }
  const fs::path temporary = path.string() + suffix + ".tmp";
  // POSIX open rather than an ofstream: a private file is created owner-only (0600) at open,
  // never readable by others for an instant, and O_EXCL refuses a file already there (a link
  // planted under the name).
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                        private_file ? 0600 : 0644);
  if (fd < 0) {
    throw std::invalid_argument("cannot write " + temporary.string() + ": " +
                                std::error_code(errno, std::generic_category()).message());
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      ::unlink(temporary.c_str());
      throw std::invalid_argument("cannot write " + temporary.string());
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(temporary.c_str());
    throw std::invalid_argument("cannot write " + temporary.string());
  }
  if (!replace) {
    // link() never replaces an existing file: a secret key already there is never overwritten.
    const int linked = ::link(temporary.c_str(), path.c_str());
    const int error = errno;
    ::unlink(temporary.c_str());
    if (linked != 0) {
      throw std::invalid_argument(
          "cannot write " + path.string() + ": " +
          (error == EEXIST ? std::string("it exists and is never overwritten")
                           : std::error_code(error, std::generic_category()).message()));
    }
    return;
  }
  std::error_code error;
  fs::rename(temporary, path, error);
  if (error) {
    fs::remove(temporary, error);
    throw std::invalid_argument("cannot write " + path.string() + ": " + error.message());
  }
}

void save_artifacts(const fs::path& dir, const compiler::Circuit& circuit,
                    const std::string& post_processing, const std::string& metadata) {
  const ClientSpec spec = make_client_spec(circuit, post_processing, metadata);
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) throw std::invalid_argument("cannot create " + dir.string() + ": " + error.message());
  write_file(dir / kServerFile, serialize_server_circuit(circuit));
  write_file(dir / kClientFile, serialize(spec));
}

// --- Client.

Client::Client(const fs::path& artifact_dir, fs::path key_dir, const ClientOptions& options)
    : Client(deserialize_client_spec(read_file(artifact_dir / kClientFile, kMaxSpecBytes)),
             std::move(key_dir), options) {}

Client::Client(ClientSpec spec, fs::path key_dir, const ClientOptions& options)
    : spec_(std::move(spec)),
      key_dir_(std::move(key_dir)),
      options_(options),
      noise_(std::make_unique<tfhe::NoiseSource>(tfhe::random_seed())) {
  runtime::validate(spec_.circuit);
}

namespace {

// An existing key directory is left as it is, but its owner should know others can enter it.
void warn_if_shared(const fs::path& dir) {
  std::error_code error;
  const fs::perms mode = fs::status(dir, error).permissions();
  if (error || (mode & kShared) == fs::perms::none) return;
  warn(WarningKind::kKeyPermissions,
       "the key directory " + dir.string() + " is open to its group or others (mode " +
           octal_mode(mode) +
           "); its files are owner-only, but a private directory (chmod 700) hides even their "
           "names and dates");
}

// A file name beside `path` that does not exist yet: path.replaced.1, .2, ...
fs::path aside_name(const fs::path& path) {
  for (int i = 1;; ++i) {
    fs::path candidate = path.string() + ".replaced." + std::to_string(i);
    if (!fs::exists(candidate)) return candidate;
  }
}

}  // namespace

void Client::generate_private_and_evaluation_keys(bool force) {
  const fs::path secret_path = key_dir_ / kClientKeyFile;
  const fs::path evaluation_path = key_dir_ / kEvaluationKeysFile;
  const fs::path id_path = key_dir_ / kKeysCircuitFile;
  const std::string circuit = hex_id(spec_.circuit_id);
  if (!key_dir_.empty() && fs::exists(secret_path) && force) {
    // A secret key is never deleted nor overwritten: the old one (and whatever was made with it)
    // moves aside, where it still decrypts earlier replies.
    for (const fs::path& p : {secret_path, evaluation_path, id_path}) {
      if (!fs::exists(p)) continue;
      std::error_code error;
      fs::rename(p, aside_name(p), error);
      if (error) {
        throw std::invalid_argument("cannot move " + p.string() + " aside: " + error.message());
      }
    }
  } else if (!key_dir_.empty() && fs::exists(secret_path)) {
    // Keys of an earlier session: used only if they are this model's.
    if (fs::exists(id_path)) {
      std::vector<std::uint8_t> raw = read_file(id_path, 64);
      std::string recorded(raw.begin(), raw.end());
      while (!recorded.empty() && (recorded.back() == '\n' || recorded.back() == '\r'))
        recorded.pop_back();
      if (recorded != circuit) {
        throw std::invalid_argument(
            "the keys in " + key_dir_.string() + " were made for model (circuit) " + recorded +
            ", this model is " + circuit +
            ": give each model its own key directory (keys are never replaced silently; "
            "force=True moves these aside and makes new ones)");
      }
    }
    const fs::perms secret_mode = fs::status(secret_path).permissions();
    if ((secret_mode & kShared) != fs::perms::none) {
      const std::string message =
          "the secret key " + secret_path.string() + " is readable or writable by others (mode " +
          octal_mode(secret_mode) + "): anyone who reads it decrypts everything sent under it";
      if (!options_.allow_readable_secret_key) {
        throw std::invalid_argument(message + ". Make it private (chmod 600 " +
                                    secret_path.string() +
                                    "), or opt in with allow_readable_secret_key");
      }
      warn(WarningKind::kKeyPermissions, message);
    }
    warn_if_shared(key_dir_);
    tfhe::DeserializeOptions options;
    options.expected_parameters = &spec_.circuit.parameters;
    std::vector<std::uint8_t> secret_bytes = read_file(secret_path);
    const WipeOnExit wipe_secret{secret_bytes};
    runtime::ClientKeys keys =
        runtime::client_keys(tfhe::deserialize_client_key(secret_bytes, options), spec_.circuit);
    const std::uint64_t id = runtime::key_id(keys.key);
    std::vector<std::uint8_t> evaluation;
    if (fs::exists(evaluation_path)) {
      evaluation = read_file(evaluation_path);
      const runtime::CompressedEvaluationKeys parsed =
          deserialize_evaluation_keys(evaluation, options);
      const char* remedy =
          ": delete that file (the secret key is kept and new evaluation keys are made from it)";
      if (parsed.key_id != id) {
        throw std::invalid_argument(evaluation_path.string() + " were made from secret key " +
                                    hex_id(parsed.key_id) + ", the secret key beside them is " +
                                    hex_id(id) + remedy);
      }
      if (spec_.circuit.has_lookups && !parsed.server_key) {
        throw std::invalid_argument(evaluation_path.string() +
                                    " holds no server key but the model needs one" + remedy);
      }
    } else {
      // The evaluation keys were lost: made again from the secret key, which is kept.
      evaluation = serialize(runtime::evaluation_keys_for(spec_.circuit, keys));
      write_file(evaluation_path, evaluation, /*private_file=*/true);
    }
    if (!fs::exists(id_path)) write_file(id_path, as_bytes(circuit + "\n"), true);
    client_keys_ = std::move(keys);
    key_id_ = id;
    evaluation_keys_ = std::move(evaluation);
    return;
  }
  runtime::Keys keys = runtime::keygen(spec_.circuit);
  evaluation_keys_ = serialize(keys.evaluation);
  if (!key_dir_.empty()) {
    std::error_code error;
    const bool created = fs::create_directories(key_dir_, error);
    if (error) {
      throw std::invalid_argument("cannot create " + key_dir_.string() + ": " + error.message());
    }
    if (created) {
      fs::permissions(key_dir_, fs::perms::owner_all, fs::perm_options::replace, error);
    } else {
      warn_if_shared(key_dir_);
    }
    // The secret key first: a process killed after it leaves a key directory the next call
    // completes (evaluation keys made again from it), never a lost key.
    std::vector<std::uint8_t> secret_bytes = tfhe::serialize(keys.client.key);
    const WipeOnExit wipe_secret{secret_bytes};
    write_file(secret_path, secret_bytes, /*private_file=*/true, /*replace=*/false);
    write_file(evaluation_path, evaluation_keys_, /*private_file=*/true);
    write_file(id_path, as_bytes(circuit + "\n"), /*private_file=*/true);
  }
  key_id_ = keys.evaluation.key_id;
  client_keys_ = std::move(keys.client);
}

std::uint64_t Client::key_id() const {
  require_keys();
  return key_id_;
}

void Client::require_keys() const {
  if (!client_keys_) {
    throw std::logic_error("no keys yet: call generate_private_and_evaluation_keys() first");
  }
}

const std::vector<std::uint8_t>& Client::serialized_evaluation_keys() const {
  require_keys();
  return evaluation_keys_;
}

std::vector<std::uint8_t> Client::encrypt_serialize(std::span<const runtime::IntSample> samples) {
  require_keys();
  tfhe::Csprng noise = noise_->next();
  EncryptedInputs inputs{spec_.circuit_id, key_id_,
                         runtime::encrypt(spec_.circuit, *client_keys_, samples, noise)};
  return serialize(inputs);
}

std::vector<std::uint8_t> Client::quantize_encrypt_serialize(
    std::span<const runtime::FloatSample> samples) {
  require_keys();  // before any warning about the values
  return encrypt_serialize(runtime::quantize_samples(spec_.input_quantizers, samples,
                                                     options_.out_of_range, "the model"));
}

std::vector<runtime::IntSample> Client::deserialize_decrypt(
    std::span<const std::uint8_t> bytes) const {
  require_keys();
  tfhe::DeserializeOptions options;
  options.expected_parameters = &spec_.circuit.parameters;
  const EncryptedOutputs outputs = deserialize_encrypted_outputs(bytes, options);
  check_circuit_id(outputs.circuit_id, spec_.circuit_id, "the encrypted outputs");
  if (outputs.key_id != key_id_) {
    throw tfhe::DeserializationError(
        "the encrypted outputs were computed on inputs encrypted under key " +
        hex_id(outputs.key_id) + ", this client's key is " + hex_id(key_id_) +
        ": only that key decrypts them (it would give garbage here); use the key directory that "
        "made the request");
  }
  return runtime::decrypt(spec_.circuit, *client_keys_, outputs.outputs);
}

std::vector<runtime::FloatSample> Client::deserialize_decrypt_dequantize(
    std::span<const std::uint8_t> bytes) const {
  const std::vector<runtime::IntSample> results = deserialize_decrypt(bytes);
  std::vector<runtime::FloatSample> out;
  out.reserve(results.size());
  for (const runtime::IntSample& r : results) {
    runtime::FloatSample f;
    for (std::size_t o = 0; o < r.size(); ++o)
      f.push_back(spec_.output_dequantizers[o].dequantize(r[o]));
    out.push_back(std::move(f));
  }
  return out;
}

// --- Server.

Server::Server(const fs::path& artifact_dir)
    : Server(deserialize_server_circuit(read_file(artifact_dir / kServerFile, kMaxCircuitBytes))) {}

Server::Server(compiler::Circuit circuit)
    : program_(std::move(circuit)), circuit_id_(deploy::circuit_id(program_.circuit())) {}

runtime::EvaluationKeys Server::load_evaluation_keys(std::span<const std::uint8_t> bytes) const {
  const compiler::Circuit& c = circuit();
  tfhe::DeserializeOptions options;
  options.expected_parameters = &c.parameters;
  const runtime::CompressedEvaluationKeys keys = deserialize_evaluation_keys(bytes, options);
  if (c.has_lookups && !keys.server_key) {
    throw std::invalid_argument(
        "the evaluation keys hold no server key but the model has lookups: generate them with "
        "this model's client artifact");
  }
  return runtime::decompress(keys, program_);
}

EncryptedInputs Server::read_inputs(std::span<const std::uint8_t> bytes,
                                    std::uint64_t key_id) const {
  tfhe::DeserializeOptions options;
  options.expected_parameters = &circuit().parameters;
  EncryptedInputs inputs = deserialize_encrypted_inputs(bytes, options);
  check_circuit_id(inputs.circuit_id, circuit_id_, "the encrypted inputs");
  if (inputs.key_id != key_id) {
    throw tfhe::DeserializationError(
        "the encrypted inputs are under key " + hex_id(inputs.key_id) +
        ", the evaluation keys were made from key " + hex_id(key_id) +
        ": run them with the evaluation keys of the client that encrypted them");
  }
  return inputs;
}

std::vector<std::uint8_t> Server::run(std::span<const std::uint8_t> encrypted_inputs,
                                      const runtime::EvaluationKeys& keys,
                                      tfhe::ThreadPool* pool) const {
  const EncryptedInputs inputs = read_inputs(encrypted_inputs, keys.key_id);
  EncryptedOutputs outputs{circuit_id_, inputs.key_id,
                           runtime::run(program_, keys, inputs.inputs, runtime::RunOptions{pool})};
  return serialize(outputs);
}

std::vector<std::uint8_t> Server::run_staged(std::span<const std::uint8_t> encrypted_inputs,
                                             std::uint64_t key_id,
                                             const runtime::StageRunner& stages) const {
  const EncryptedInputs inputs = read_inputs(encrypted_inputs, key_id);
  EncryptedOutputs outputs{circuit_id_, inputs.key_id,
                           runtime::run_staged(program_, inputs.inputs, stages)};
  return serialize(outputs);
}

std::vector<std::uint8_t> Server::run(std::span<const std::uint8_t> encrypted_inputs,
                                      std::span<const std::uint8_t> evaluation_keys) const {
  return run(encrypted_inputs, load_evaluation_keys(evaluation_keys));
}

}  // namespace fheml::deploy
