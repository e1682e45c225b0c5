// kSimulate: the data flow of kExecute on torus phases in the clear. Linear nodes are the same
// modular arithmetic, so noise correlations come for free; the noises that depend on keys are
// drawn from the engine's noise model (tfhe/noise.h), the single source of truth that also
// chose the parameters.
#include <cmath>

#include "fheml/runtime/detail.h"
#include "fheml/runtime/runtime.h"
#include "fheml/tfhe/noise.h"

namespace fheml::runtime {
namespace {

// A centred Gaussian on the torus through the engine's sampler, which takes standard deviations
// up to 2^-10 (beyond, a sample could leave the int64 range). The noise before a blind rotation
// is larger (2^-9 to 2^-7 for the built-in sets): a sum of k independent draws of std/sqrt(k) is
// the same Gaussian (each draw's rounding adds 1/12 of a unit: nothing).
class TorusGaussian {
 public:
  explicit TorusGaussian(double std)
      : draws_(static_cast<std::size_t>(std::floor(std::pow(std / 0x1p-10, 2))) + 1),
        each_{std / std::sqrt(static_cast<double>(draws_))} {}
  tfhe::Torus operator()(tfhe::Csprng& rng) const {
    tfhe::Torus sum = 0;
    for (std::size_t i = 0; i < draws_; ++i) sum += rng.gaussian_noise(each_);
    return sum;
  }

 private:
  std::size_t draws_;
  tfhe::NoiseStdDev each_;
};

}  // namespace

std::vector<IntSample> run_simulate(const Program& program, std::span<const IntSample> samples,
                                    tfhe::Csprng& noise_rng) {
  using tfhe::Torus;
  const compiler::Circuit& circuit = program.circuit();
  const ir::IntGraph& graph = circuit.graph;
  const std::span<const tfhe::PbsParameters> partitions = program.partitions();
  const std::size_t count = partitions.size();
  // Per partition: a fresh encryption under its big key (inputs), the bootstrap's output; per
  // (big key read, partition): the key switch (with its 32-bit rounding) and the modulus switch,
  // i.e. variance_at_lookup without the linear part. The rounding of the body inside the latter
  // is also applied for real below by modulus_switch: a double count of 2/n of the modulus
  // switch variance (n >= 450), which errs on the safe side and is negligible.
  std::vector<TorusGaussian> fresh, after_bootstrap, before_rotation;
  for (const tfhe::PbsParameters& p : partitions) {
    fresh.emplace_back(p.glwe_noise.value);
    after_bootstrap.emplace_back(circuit.has_lookups ? std::sqrt(tfhe::pbs_output_variance(p))
                                                     : 0.0);
  }
  for (const tfhe::PbsParameters& from : partitions) {
    const tfhe::LweDimension big =
        tfhe::extracted_lwe_dimension(from.glwe_dimension, from.polynomial_size);
    for (const tfhe::PbsParameters& p : partitions) {
      before_rotation.emplace_back(
          circuit.has_lookups ? std::sqrt(tfhe::variance_at_lookup(p, big, 0.0)) : 0.0);
    }
  }
  const std::vector<ir::ValueId> inputs = graph.inputs();
  std::vector<IntSample> results;
  results.reserve(samples.size());
  std::vector<std::vector<Torus>> phases(graph.nodes.size());
  for (const IntSample& sample : samples) {
    if (sample.size() != inputs.size()) {
      throw std::invalid_argument("expected " + std::to_string(inputs.size()) +
                                  " input tensors, found " + std::to_string(sample.size()));
    }
    std::size_t next_input = 0;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
      const ir::IntNode& node = graph.nodes[i];
      const std::uint32_t width = circuit.width[i];
      std::vector<Torus>& out = phases[i];
      out.assign(ir::element_count(node.shape), 0);
      switch (node.op) {
        case ir::IntOp::kInput: {
          const ir::ValueId id{static_cast<std::uint32_t>(i)};
          const ir::IntTensor& x = sample[next_input++];
          if (x.shape != node.shape || x.data.size() != out.size()) {
            throw std::invalid_argument("input %" + std::to_string(i) + ": expected shape " +
                                        ir::to_string(node.shape) + ", found " +
                                        ir::to_string(x.shape));
          }
          for (std::size_t e = 0; e < out.size(); ++e) {
            out[e] = detail::encode_at(x.data[e], width) + fresh[program.key_class(id)](noise_rng);
          }
          break;
        }
        case ir::IntOp::kLinear: {
          const ir::IntLinear& l = node.linear;
          for (std::size_t r = 0; r < out.size(); ++r) {
            Torus acc = detail::encode_at(l.bias[r], width);
            for (std::size_t k = l.row_begin[r]; k < l.row_begin[r + 1]; ++k) {
              const ir::IntLinearEntry& e = l.entries[k];
              acc += static_cast<Torus>(e.coefficient) *
                     phases[node.inputs[e.source].index][e.element];
            }
            out[r] = acc;
          }
          break;
        }
        case ir::IntOp::kLookup: {
          const ir::IntLookup& lookup = node.lookup;
          const std::size_t source = node.inputs[0].index;
          const std::uint32_t in_width = circuit.width[source];
          const Torus offset = detail::encode_at(lookup.offset, in_width);
          const Torus scale = Torus{1} << (in_width - lookup.bits - lookup.shift);
          const ir::ValueId id{static_cast<std::uint32_t>(i)};
          const auto tables = program.tables(id);
          const std::uint32_t part = program.partition(id);
          const TorusGaussian& before =
              before_rotation[program.key_class(ir::ValueId{static_cast<std::uint32_t>(source)}) *
                                  count +
                              part];
          for (std::size_t e = 0; e < out.size(); ++e) {
            const Torus phase = (phases[source][e] + offset) * scale + before(noise_rng);
            const std::size_t index =
                tfhe::modulus_switch(phase, tfhe::lookup_polynomial_size(partitions[part]));
            out[e] = tfhe::lookup_clear(tables[lookup.table_of_element[e]], index) +
                     after_bootstrap[part](noise_rng);
          }
          break;
        }
      }
    }
    IntSample decoded;
    for (const ir::ValueId id : graph.outputs) {
      const ir::IntNode& node = graph.node(id);
      ir::IntTensor t(node.shape);
      for (std::size_t e = 0; e < t.data.size(); ++e) {
        t.data[e] = detail::decode_output(phases[id.index][e], circuit.width[id.index], node.range,
                                          circuit.output_noise_bits);
      }
      decoded.push_back(std::move(t));
    }
    results.push_back(std::move(decoded));
  }
  return results;
}

}  // namespace fheml::runtime
