#include "fheml/quant/quantizers.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fheml::quant {

ir::IntTensor InputQuantizer::quantize(const ir::FloatTensor& x) const {
  if (x.shape != shape || x.data.size() != ir::element_count(shape)) {
    throw std::invalid_argument("input \"" + name + "\": expected shape " + ir::to_string(shape) +
                                ", found " + ir::to_string(x.shape));
  }
  if (scale.size() != zero_point.size() ||
      (scale.size() != 1 && scale.size() != ir::element_count(shape))) {
    throw std::invalid_argument("input \"" + name + "\": the quantizer has " +
                                std::to_string(scale.size()) + " scales and " +
                                std::to_string(zero_point.size()) +
                                " zero points; expected 1 or one per element");
  }
  ir::IntTensor q(shape);
  const double top = std::ldexp(1.0, static_cast<int>(bits)) - 1;
  for (std::size_t i = 0; i < x.data.size(); ++i) {
    const double v = x.data[i];
    if (!std::isfinite(v)) {
      throw std::invalid_argument("input \"" + name + "\": element " + std::to_string(i) + " is " +
                                  std::to_string(v) +
                                  "; inputs must be finite (impute or drop NaN/inf first)");
    }
    const auto h = static_cast<double>(headroom);
    q.data[i] = static_cast<std::int64_t>(
        std::clamp(std::nearbyint(v / scale_of(i) + zero_point_of(i)), -h, top + h));
  }
  return q;
}

ir::FloatTensor OutputDequantizer::dequantize(const ir::IntTensor& q) const {
  if (q.shape != shape || q.data.size() != scale.size()) {
    throw std::invalid_argument("output: expected shape " + ir::to_string(shape) + ", found " +
                                ir::to_string(q.shape));
  }
  ir::FloatTensor x(shape);
  for (std::size_t i = 0; i < q.data.size(); ++i) {
    x.data[i] = scale[i] * static_cast<double>(q.data[i]) + bias[i];
  }
  return x;
}

}  // namespace fheml::quant
