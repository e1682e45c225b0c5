// The client-side ends of a quantized graph: how float inputs become the integers the circuit
// encrypts, and how its integer outputs become floats again.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fheml/ir/tensor.h"

namespace fheml::quant {

// Affine quantization of one graph input: q = clamp(round(x / scale + zero_point), 0,
// 2^bits - 1), so that x ~ scale * (q - zero_point). The zero point is real: nothing downstream
// needs it to be an integer (it folds into the float bias of the next linear op).
struct InputQuantizer {
  std::string name;
  ir::Shape shape;
  double scale = 1.0;
  double zero_point = 0.0;
  std::uint32_t bits = 8;
  // Throws std::invalid_argument on a wrong shape or a NaN/inf value (naming the element).
  ir::IntTensor quantize(const ir::FloatTensor& x) const;
  double dequantize(std::int64_t q) const { return scale * (static_cast<double>(q) - zero_point); }
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
