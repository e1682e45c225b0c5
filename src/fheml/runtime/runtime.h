// Running a compiled circuit (compiler/circuit.h) in one of three modes:
//
//   kDisable   the exact integer interpreter (ir::evaluate), each output decoded into the window
//              [lo, lo + 2^(W+1)) of its class exactly as decryption would;
//   kSimulate  the same data flow on torus phases in the clear: fresh and bootstrap noise drawn
//              from the engine's noise model, lookups read through tfhe::lookup_clear, so a
//              failure happens with the probability and by the mechanism of real execution;
//   kExecute   TFHE: the client encrypts, the server runs on ciphertexts with the evaluation
//              keys only, the client decrypts.
//
// Tensors of a batch of samples travel together: all lookups of one depth of all samples go into
// one keyswitch_bootstrap_batch call, so independent bootstraps run on every thread of the pool
// (RunOptions::pool, FheCircuitOptions::threads).
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "fheml/compiler/circuit.h"
#include "fheml/ir/tensor.h"
#include "fheml/runtime/mode.h"
#include "fheml/runtime/statistics.h"
#include "fheml/tfhe/engine.h"

namespace fheml::runtime {

// One sample: one integer tensor per graph input (or output), in graph order.
using IntSample = std::vector<ir::IntTensor>;
// One sample of floats, same convention.
using FloatSample = std::vector<ir::FloatTensor>;

// Each sample's tensors through `inputs` (one quantizer per input): std::invalid_argument for a
// sample with another tensor count (naming `what`, "the circuit" or "the model") or as
// InputQuantizer::quantize; values beyond each quantizer's range handled by `out_of_range`, per
// input over the whole batch.
std::vector<IntSample> quantize_samples(std::span<const quant::InputQuantizer> inputs,
                                        std::span<const FloatSample> samples,
                                        quant::OutOfRange out_of_range, const char* what);

// A key switch from the big key of partition `from` (a key class: big_key_classes) to the small
// key of partition `to`, whose own big key is another: the input of `to`'s lookups that read
// values of partition `from`'s big key.
struct KeyswitchPair {
  std::uint32_t from = 0;
  std::uint32_t to = 0;
  bool operator==(const KeyswitchPair&) const = default;
  auto operator<=>(const KeyswitchPair&) const = default;
};

// Partitions with the same k * N and GLWE noise share one big key: its k * N bits read as a GLWE
// key of each one's k and N (k = 2, N = 1024 and k = 1, N = 2048 extract to the same LWE key).
// Partitions of another k * N (compiler/circuit.h) have one each. Per partition: the first
// partition with its big key.
std::vector<std::uint32_t> big_key_classes(std::span<const tfhe::PbsParameters> partitions);

// The circuit lowered for evaluation: the lookup stage of every node and the engine's lookup
// tables, built once (one per distinct table of each lookup node) at the circuit's parameters.
class Program {
 public:
  // Throws std::invalid_argument when the circuit cannot run: widths missing or over 62 bits, a
  // lookup reading a class narrower than bits + shift, a lookup while has_lookups is false, or
  // a table the parameters' polynomial size cannot hold.
  explicit Program(compiler::Circuit circuit);

  const compiler::Circuit& circuit() const { return circuit_; }
  // Per node: 0 for inputs, 1 + the depth of the operand for a lookup, the maximum over the
  // sources for a linear node.
  std::span<const std::uint32_t> depth() const { return depth_; }
  // Lookup stages on the critical path (the maximum depth).
  std::uint32_t stage_count() const { return stage_count_; }
  // Engine tables of a lookup node, indexed like IntLookup::tables; empty for other nodes.
  std::span<const tfhe::LookupTable> tables(ir::ValueId node) const {
    return tables_.at(node.index);
  }
  // The parameter set of each partition (circuit.partitions, or {circuit.parameters} for a
  // circuit that names none) and the partition of a lookup node's bootstraps.
  std::span<const tfhe::PbsParameters> partitions() const { return partitions_; }
  std::uint32_t partition(ir::ValueId node) const { return partition_.at(node.index); }
  // The big key a node's ciphertexts are under, named by the first partition that has it
  // (big_key_classes): an input's partition's, a lookup's partition's, a linear node's operands'.
  std::uint32_t key_class(ir::ValueId node) const { return key_class_.at(node.index); }
  // The key switches between big keys the circuit needs: (big key class of a lookup's input,
  // the lookup's partition) where the partition's own big key is another.
  std::span<const KeyswitchPair> keyswitch_pairs() const { return keyswitch_pairs_; }
  // True when every ciphertext is under one big key (every circuit of shared-N partitions).
  bool single_big_key() const;
  // Whether a lookup of partition p reads the partition's own big key (false: every lookup of
  // it key-switches from another big key, and its own key switching key is never used).
  bool reads_own_big_key(std::uint32_t p) const;

 private:
  compiler::Circuit circuit_;
  std::vector<tfhe::PbsParameters> partitions_;
  std::vector<std::uint32_t> partition_;
  std::vector<std::uint32_t> key_class_;
  std::vector<KeyswitchPair> keyswitch_pairs_;
  std::vector<std::uint32_t> depth_;
  std::uint32_t stage_count_ = 0;
  std::vector<std::vector<tfhe::LookupTable>> tables_;
};

// --- The client's view of a circuit: what keygen, encrypt and decrypt need, and no weights (a
// deployment's client artifact holds this, the server artifact the whole circuit).

struct TensorEncoding {
  ir::Shape shape;
  std::uint32_t width = 0;  // W of the node's encoding class, 1..62
  ir::IntRange range;       // exact outputs decode into [range.lo, range.lo + 2^(W+1))
  // The big key the tensor is encrypted under, named by its first partition (Program::key_class).
  std::uint32_t key_class = 0;
  // Outputs of an approximate circuit (compiler::Circuit::output_noise_bits; 0 for inputs and
  // exact outputs, below width): they decode into the window that starts 2^(noise_bits-1) below
  // range.lo and are clamped into the range.
  std::uint32_t noise_bits = 0;
  bool operator==(const TensorEncoding&) const = default;
};

struct ClientCircuit {
  tfhe::PbsParameters parameters{};
  // With partitions (compiler/circuit.h): every partition's set, partitions[0] == parameters;
  // empty for one.
  std::vector<tfhe::PbsParameters> partitions{};
  bool has_lookups = false;             // whether keygen makes a server key
  std::vector<TensorEncoding> inputs;   // graph inputs, in order
  std::vector<TensorEncoding> outputs;  // graph outputs, in order
  // Key switches between big keys the server needs (Program::keyswitch_pairs); empty when the
  // partitions share one big key.
  std::vector<KeyswitchPair> keyswitch_pairs{};
  bool operator==(const ClientCircuit&) const = default;
};

// Throws std::invalid_argument when circuit.width is malformed (as Program does).
ClientCircuit client_view(const compiler::Circuit& circuit);
// Throws std::invalid_argument on a width outside 1..62, an empty range, partitions that do not
// start with `parameters`, or a key class or key switch naming a partition that is not the first
// of its big key.
void validate(const ClientCircuit& circuit);

// The parameter set of each partition: circuit.partitions, or {circuit.parameters} when it names
// at most one.
std::vector<tfhe::PbsParameters> partition_parameters(const compiler::Circuit& circuit);
std::vector<tfhe::PbsParameters> partition_parameters(const ClientCircuit& circuit);

// --- Keys.

struct ClientKeys {
  tfhe::ClientKey key;  // partition 0's small key and big key
  // The small keys of partitions 1.. (none for a circuit of one partition), derived from `key`
  // (client_keys below): the key file of a deployment stays the one secret key it always was.
  // Each is the first n coefficients of its partition's big key (tfhe/keyswitch.h, "Shared
  // prefix").
  std::vector<tfhe::LweSecretKey> partition_keys{};
  // The big keys beyond partition 0's (partitions of their own k or N), each with the key class
  // that names it (big_key_classes), derived from `key` the same way.
  std::vector<std::pair<std::uint32_t, tfhe::GlweSecretKey>> big_keys{};
  // The big key of a key class (0: key.glwe_key). Throws std::invalid_argument when it has none.
  const tfhe::GlweSecretKey& big_key(std::uint32_t key_class) const;
  // Partition p's key as the engine takes it: its small key and its big key. Throws
  // std::invalid_argument when p has no key.
  tfhe::ClientKey for_partition(std::span<const tfhe::PbsParameters> partitions,
                                std::size_t p) const;
};

// `key` with the small keys of the circuit's partitions 1.. (and the big keys of its key classes
// beyond 0). A big key beyond 0 is drawn from a ChaCha20 stream whose seed is a keyed BLAKE2b of
// the serialized key under a label of its own per class (a PRF of a secret of hundreds of bits:
// as good as an independent key, and never stored apart); a small key is the first n
// coefficients of its class's big key (a set with n > k*N, which the search does not make,
// draws its own the same way).
// Throws std::invalid_argument when `key` is not at circuit.parameters.
ClientKeys client_keys(tfhe::ClientKey key, const ClientCircuit& circuit);

// The identity of a secret key: the first 8 bytes (little-endian) of a BLAKE2b-128 of its
// serialized form, keyed with a label of its own (domain separation from the checksums). One-way:
// it names the key without revealing anything usable about it (the key has hundreds of bits of
// entropy; 64 bits of a hash of it narrow nothing), and stays the same for every set of
// evaluation keys made from it. Evaluation keys, encrypted inputs and replies carry it, so that
// nothing made under one key is used or decrypted under another (deploy/).
std::uint64_t key_id(const tfhe::ClientKey& key);

// Evaluation keys as they travel (seeded). No server key for a circuit without lookups.
struct CompressedEvaluationKeys {
  tfhe::PbsParameters parameters;
  std::optional<tfhe::CompressedServerKey> server_key;  // partition 0
  std::uint64_t key_id = 0;  // of the secret key they were made from (key_id above)
  // Partitions 1.. (their own key switching and bootstrap keys).
  std::vector<tfhe::CompressedServerKey> partition_server_keys{};
  // The key switches between big keys (ClientCircuit::keyswitch_pairs), in that order: from the
  // big key of `pair.from` to the small key of `pair.to`, at `to`'s key switch decomposition.
  std::vector<std::pair<KeyswitchPair, tfhe::SeededKeyswitchKey>> keyswitch_keys{};
};

// Evaluation keys as the server computes with them.
struct EvaluationKeys {
  tfhe::PbsParameters parameters;
  std::optional<tfhe::ServerKey> server_key;  // partition 0
  std::uint64_t key_id = 0;
  std::vector<tfhe::ServerKey> partition_server_keys{};  // partitions 1..
  std::vector<std::pair<KeyswitchPair, tfhe::KeyswitchKey32>> keyswitch_keys{};
};

struct KeygenOptions {
  // Reproducible keys for tests; by default fresh OS entropy. Never fix a seed for real keys.
  std::optional<tfhe::Seed> seed;
};

struct Keys {
  ClientKeys client;
  CompressedEvaluationKeys evaluation;
};

// Client side: the client key at circuit.parameters and, only when circuit.has_lookups, the
// compressed server key. Throws std::invalid_argument for parameters tfhe::validate refuses.
Keys keygen(const compiler::Circuit& circuit, const KeygenOptions& options = {});
Keys keygen(const ClientCircuit& circuit, const KeygenOptions& options = {});
// Fresh evaluation keys for an existing client key (its evaluation keys lost: the secret key,
// which nothing can replace, is kept). Throws std::invalid_argument when the key's parameters
// are not the circuit's.
CompressedEvaluationKeys evaluation_keys_for(const ClientCircuit& circuit, const ClientKeys& keys);
// Server side: expands the key switching key and the bootstrap key (Fourier form). Throws
// std::invalid_argument when the keys do not match their parameters.
EvaluationKeys decompress(const CompressedEvaluationKeys& keys);
// The same for `program`, leaving out the key switching key of each partition that never reads
// its own big key (Program::reads_own_big_key): the key switch from a partition's own k * N is
// the largest key it has (~1 GB held at N = 2^15) and only lookups under that key use it.
EvaluationKeys decompress(const CompressedEvaluationKeys& keys, const Program& program);

// --- Ciphertexts. Ciphertext s * element_count(shape) + e holds element e of sample s, under the
// big key (dimension k*N), encoded at the width of its node's class.

// One graph input for a batch, as it travels: one seed and one body per element.
struct EncryptedInput {
  std::size_t batch = 0;
  tfhe::SeededLweCiphertextList ciphertexts;
};

// One graph output for a batch, as the server returns it.
struct EncryptedOutput {
  std::size_t batch = 0;
  tfhe::LweCiphertextList ciphertexts;
};

// One graph input for a batch with every mask written out. For a client and a server in one
// process (FheCircuit): the masks are generated once, at encryption, where a seeded input has
// them generated to compute the bodies and again by tfhe::expand in run, and the mask
// generation (ChaCha20, k*N words per element) is most of the cost of a circuit without lookups.
// 8 (k*N + 1) bytes per element instead of 8: not the form to send.
struct ExpandedInput {
  std::size_t batch = 0;
  tfhe::LweCiphertextList ciphertexts;
};

// Client side: encrypts quantized samples (each value v as (v mod 2^(W+1)) * 2^(63-W); values
// outside the input's range wrap like the clear interpreter). One EncryptedInput per graph
// input, each with a fresh mask seed from the OS. Throws std::invalid_argument on a wrong tensor
// count or shape.
std::vector<EncryptedInput> encrypt(const compiler::Circuit& circuit, const ClientKeys& keys,
                                    std::span<const IntSample> samples, tfhe::Csprng& noise_rng);
std::vector<EncryptedInput> encrypt(const ClientCircuit& circuit, const ClientKeys& keys,
                                    std::span<const IntSample> samples, tfhe::Csprng& noise_rng);
// The same encoding and checks, encrypted into expanded lists: the masks come from one ChaCha20
// stream (tfhe::Csprng) under a fresh seed from the OS, the noise from `noise_rng`.
std::vector<ExpandedInput> encrypt_expanded(const compiler::Circuit& circuit,
                                            const ClientKeys& keys,
                                            std::span<const IntSample> samples,
                                            tfhe::Csprng& noise_rng);

// Per run call: how the server batched its bootstraps (one entry per keyswitch_bootstrap_batch
// call, the number of ciphertexts in it).
struct ExecutionTrace {
  std::vector<std::size_t> batch_sizes;
};

struct RunOptions {
  tfhe::ThreadPool* pool = nullptr;  // nullptr: ThreadPool::global()
  ExecutionTrace* trace = nullptr;   // filled when given
};

// Server side: the circuit on ciphertexts, with the evaluation keys only. Throws
// std::invalid_argument when the inputs do not match the circuit (count, batch, sizes,
// dimension) or the keys do not match circuit.parameters.
std::vector<EncryptedOutput> run(const Program& program, const EvaluationKeys& keys,
                                 std::span<const EncryptedInput> inputs,
                                 const RunOptions& options = {});
// The same on expanded inputs (encrypt_expanded), with the same checks; they are read in place,
// not copied.
std::vector<EncryptedOutput> run(const Program& program, const EvaluationKeys& keys,
                                 std::span<const ExpandedInput> inputs,
                                 const RunOptions& options = {});

// --- A run split at its stages (levels of independent bootstraps). The server of a request
// runs the linear parts itself and hands each stage's bootstraps to a StageRunner, which may
// spread them over other processes or machines holding the same circuit and evaluation keys
// (fheml.distributed does, on Dask): one large sample's bootstraps on many cores.

// One bootstrap of a stage: the lookup node and which of its tables (IntLookup::tables).
struct StageLookup {
  std::uint32_t node = 0;
  std::uint32_t table = 0;
  bool operator==(const StageLookup&) const = default;
};

// Given a stage's ciphertexts (under one big key, ready for the keyswitch) and the table of each,
// returns the bootstrapped ciphertexts in the same order, under the big key of the lookups'
// partitions (run_stage on the runner's side). A circuit of several big keys hands a stage over
// in one call per pair of big keys (read, written), each list of one dimension.
using StageRunner = std::function<tfhe::LweCiphertextList(const tfhe::LweCiphertextList& inputs,
                                                          std::span<const StageLookup> lookups)>;

// run, with every stage's bootstraps handed to `stages` and no evaluation keys here. The same
// checks of the inputs; std::invalid_argument when `stages` returns another count of ciphertexts
// or another dimension than the big key its lookups write (its exceptions pass through).
std::vector<EncryptedOutput> run_staged(const Program& program,
                                        std::span<const EncryptedInput> inputs,
                                        const StageRunner& stages, const RunOptions& options = {});

// The runner's side: bootstraps inputs[i] with the table lookups[i] names (several ciphertexts
// of a stage, any subset of it whose lookups read one big key and write one), bit-identical to
// run's own bootstraps. Throws std::invalid_argument when the keys do not match the circuit, the
// counts differ, the lookups read or write more than one big key, the dimension is not that of
// the big key they read, or a lookup names no lookup node or no table of it.
tfhe::LweCiphertextList run_stage(const Program& program, const EvaluationKeys& keys,
                                  const tfhe::LweCiphertextList& inputs,
                                  std::span<const StageLookup> lookups,
                                  const RunOptions& options = {});

// Client side: phase, rounded to a multiple of 2^(63-W), mapped into [lo, lo + 2^(W+1)) of the
// output node's range (approximate outputs: the window 2^(b-1) lower, the value clamped into the
// range; TensorEncoding::noise_bits). Throws std::invalid_argument on sizes that do not match the
// circuit.
std::vector<IntSample> decrypt(const compiler::Circuit& circuit, const ClientKeys& keys,
                               std::span<const EncryptedOutput> outputs);
std::vector<IntSample> decrypt(const ClientCircuit& circuit, const ClientKeys& keys,
                               std::span<const EncryptedOutput> outputs);

// --- Clear modes.

// kDisable: ir::evaluate per sample, outputs decoded into their windows.
std::vector<IntSample> run_clear(const compiler::Circuit& circuit,
                                 std::span<const IntSample> samples);

// kSimulate: phases in the clear with sampled noise (see the top of this file).
std::vector<IntSample> run_simulate(const Program& program, std::span<const IntSample> samples,
                                    tfhe::Csprng& noise_rng);

// --- Convenience: quantize, run, dequantize.

// The most threads a circuit's own pool may have (FheCircuitOptions::threads): far beyond any
// machine's cores, well below what an operating system refuses with an unhelpful error.
inline constexpr unsigned kMaxThreads = 1024;

struct FheCircuitOptions {
  // Keys, encryption noise and simulation noise derive from it; by default OS entropy. A fixed
  // seed is for tests only.
  std::optional<tfhe::Seed> seed;
  // Threads of kExecute's run: 0 shares tfhe::ThreadPool::global() (one per hardware thread);
  // n >= 1 gives the circuit its own pool of n threads (the calling thread included, so 1 runs
  // everything on the caller), for a server that runs several circuits side by side or
  // measures one thread; at most kMaxThreads. Key generation and decompression (keygen(), the first
  // kExecute) run on the global pool whatever this says: the engine's key routines take no pool.
  unsigned threads = 0;
  // Float inputs beyond the input quantizers' range (predict, and the models' quantize_input).
  quant::OutOfRange out_of_range = quant::OutOfRange::kWarn;
};

// Thread-safe: concurrent calls on one object each draw their own noise stream; the keys are
// made once, by whichever call needs them first.
class FheCircuit {
 public:
  explicit FheCircuit(compiler::Circuit circuit, const FheCircuitOptions& options = {});

  // Quantizes each sample with circuit.inputs, runs the batch in `mode`, dequantizes with
  // circuit.outputs. kExecute generates the keys on first use and keeps them; it encrypts
  // with encrypt_expanded (client and server share the process: no seeded form to send), the
  // samples split across the circuit's pool (FheCircuitOptions::threads), and runs on it.
  std::vector<FloatSample> predict(std::span<const FloatSample> samples, Mode mode);
  // The same on already quantized samples.
  std::vector<IntSample> run_integers(std::span<const IntSample> samples, Mode mode);
  // Generates the keys now (otherwise the first kExecute does).
  void keygen();

  const compiler::Circuit& circuit() const { return program_.circuit(); }
  const Program& program() const { return program_; }
  // compute_statistics at the pool's thread count plus the timings of the last run.
  Statistics statistics() const;
  // The threads kExecute runs on: FheCircuitOptions::threads, or the global pool's size for 0.
  std::size_t threads() const;
  quant::OutOfRange out_of_range() const { return options_.out_of_range; }

 private:
  std::vector<ExpandedInput> encrypt_on_pool(std::span<const IntSample> samples);

  Program program_;
  FheCircuitOptions options_;
  tfhe::Seed seed_;
  // Pointers: neither a mutex nor a NoiseSource can move, FheCircuit can.
  std::unique_ptr<tfhe::NoiseSource> noise_;  // one child stream per call
  std::unique_ptr<std::mutex> mutex_;         // the keys (made once) and last_run_
  // Owned pool when options_.threads >= 1 (a pointer: a ThreadPool cannot move, FheCircuit can).
  std::unique_ptr<tfhe::ThreadPool> pool_;
  std::optional<ClientKeys> client_keys_;
  std::optional<EvaluationKeys> evaluation_keys_;
  double keygen_seconds_ = 0;
  std::optional<Timings> last_run_;
};

}  // namespace fheml::runtime
