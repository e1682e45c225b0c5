// The client-side ends of a quantized graph: how float inputs become the integers the circuit
// encrypts, and how its integer outputs become floats again.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "fheml/ir/tensor.h"

namespace fheml::quant {

// How the integers of one input travel (each is one ciphertext).
//   kInteger      one integer q per element;
//   kThermometer  per element the 2^bits - 1 bits [q >= 1], [q >= 2], ..., [q >= 2^bits - 1]
//                 (unary code), element e's bit j - 1 at e * (2^bits - 1) + j - 1. Every
//                 comparison of q with a constant is then a linear function of one bit, so a
//                 circuit made of comparisons (tree ensembles) needs no bootstrap to compare. The
//                 code depends on the quantizer only, never on the model: the client learns
//                 nothing of the thresholds it serves.
enum class InputEncoding : std::uint8_t { kInteger = 0, kThermometer = 1 };

// Thermometer codes are refused above this many bits (2^10 - 1 ciphertexts per element).
inline constexpr std::uint32_t kMaxThermometerBits = 10;

// What becomes of input values beyond the range a quantizer represents (its calibrated range
// plus headroom). They are clipped to its ends either way: the encrypted result is then right
// for the circuit and wrong for the model by as much as the clipping moved them.
enum class OutOfRange : std::uint8_t {
  kWarn = 0,   // clip, and say so through fheml::warn (values, rows, elements, how far out)
  kRaise = 1,  // refuse the batch (std::invalid_argument with the same account)
  kClip = 2,   // clip silently
};
const char* to_string(OutOfRange policy);
// "warn", "raise" or "clip"; std::invalid_argument otherwise.
OutOfRange parse_out_of_range(std::string_view name);

// Values beyond a quantizer's range, counted over a batch by quantize_levels.
struct RangeTally {
  std::size_t values = 0;
  std::size_t rows = 0;  // samples (quantize_levels calls) with at least one such value
  std::map<std::size_t, std::size_t> per_element;  // element -> values
  double furthest = 0;  // the largest distance beyond the range, in calibrated ranges
};

// Affine quantization of one graph input: q = clamp(round(x / scale + zero_point), 0,
// 2^bits - 1), so that x ~ scale * (q - zero_point), with one scale and zero point for the
// tensor or one per element (per channel). Zero points are real: nothing downstream needs them
// to be integers (they fold into the float bias of the next linear op).
struct InputQuantizer {
  std::string name;
  ir::Shape shape;
  std::vector<double> scale{1.0};       // size 1 (per tensor) or element_count(shape)
  std::vector<double> zero_point{0.0};  // same size as scale
  std::uint32_t bits = 8;
  // Integers clamp to [-headroom, 2^bits - 1 + headroom]: values beyond the calibrated range
  // (test rows outside the training data's) keep their value up to `headroom` steps instead of
  // clipping at the ends (QuantizeOptions::input_headroom).
  std::int64_t headroom = 0;
  InputEncoding encoding = InputEncoding::kInteger;  // kThermometer: headroom must be 0
  // Bits per element on the wire: 1 (kInteger) or 2^bits - 1 (kThermometer).
  std::size_t levels() const;
  // Shape of the integer tensor quantize() returns (the graph input's): `shape`, or `shape`
  // with a last dimension of levels() appended for kThermometer.
  ir::Shape encoded_shape() const;
  double scale_of(std::size_t element) const {
    return scale.size() == 1 ? scale[0] : scale[element];
  }
  double zero_point_of(std::size_t element) const {
    return zero_point.size() == 1 ? zero_point[0] : zero_point[element];
  }
  // Throws std::invalid_argument on a wrong shape or a NaN/inf value (naming the element).
  // Returns a tensor of encoded_shape(): encode(quantize_levels(x)).
  ir::IntTensor quantize(const ir::FloatTensor& x, RangeTally* tally = nullptr) const;
  // The grid level of each element (a tensor of `shape`), before the encoding. With a tally,
  // counts the values clipping moved by more than half a step. A thermometer-coded input counts
  // none: it feeds only comparisons with levels on its grid (models::TreeEnsemble keeps every
  // threshold inside it), which a value beyond an end and that end answer alike.
  ir::IntTensor quantize_levels(const ir::FloatTensor& x, RangeTally* tally = nullptr) const;
  // Applies `policy` to what `tally` counted over `rows` rows: nothing, fheml::warn, or
  // std::invalid_argument, with the count, the elements (features for a [1, F] input) and how far
  // out.
  void settle(const RangeTally& tally, std::size_t rows, OutOfRange policy) const;
  // Levels (a tensor of `shape`) -> the encoded tensor; throws std::invalid_argument on a
  // wrong shape.
  ir::IntTensor encode(const ir::IntTensor& levels) const;
  double dequantize(std::int64_t q, std::size_t element = 0) const {
    return scale_of(element) * (static_cast<double>(q) - zero_point_of(element));
  }
};

// x = scale[e] * q + bias[e] per element of one graph output.
struct OutputDequantizer {
  ir::Shape shape;
  std::vector<double> scale;
  std::vector<double> bias;
  // Throws std::invalid_argument on a wrong shape.
  ir::FloatTensor dequantize(const ir::IntTensor& q) const;
};

}  // namespace fheml::quant
