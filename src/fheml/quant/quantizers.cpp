#include "fheml/quant/quantizers.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "fheml/common/warnings.h"

namespace fheml::quant {

const char* to_string(OutOfRange policy) {
  switch (policy) {
    case OutOfRange::kWarn:
      return "warn";
    case OutOfRange::kRaise:
      return "raise";
    case OutOfRange::kClip:
      return "clip";
  }
  return "?";
}

OutOfRange parse_out_of_range(std::string_view name) {
  for (OutOfRange p : {OutOfRange::kWarn, OutOfRange::kRaise, OutOfRange::kClip}) {
    if (name == to_string(p)) return p;
  }
  throw std::invalid_argument("out_of_range must be 'warn', 'raise' or 'clip', found '" +
                              std::string(name) + "'");
}

std::size_t InputQuantizer::levels() const {
  if (encoding == InputEncoding::kInteger) return 1;
  if (bits < 1 || bits > kMaxThermometerBits) {
    throw std::invalid_argument("input \"" + name + "\": a thermometer code takes 1.." +
                                std::to_string(kMaxThermometerBits) + " bits, found " +
                                std::to_string(bits));
  }
  return (std::size_t{1} << bits) - 1;
}

ir::Shape InputQuantizer::encoded_shape() const {
  if (encoding == InputEncoding::kInteger) return shape;
  ir::Shape s = shape;
  s.push_back(levels());
  return s;
}

ir::IntTensor InputQuantizer::quantize(const ir::FloatTensor& x, RangeTally* tally) const {
  return encode(quantize_levels(x, tally));
}

ir::IntTensor InputQuantizer::quantize_levels(const ir::FloatTensor& x, RangeTally* tally) const {
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
  const auto h = static_cast<double>(headroom);
  const bool count = tally != nullptr && encoding == InputEncoding::kInteger;
  bool row_out = false;
  for (std::size_t i = 0; i < x.data.size(); ++i) {
    const double v = x.data[i];
    if (!std::isfinite(v)) {
      throw std::invalid_argument("input \"" + name + "\": element " + std::to_string(i) + " is " +
                                  std::to_string(v) +
                                  "; inputs must be finite (impute or drop NaN/inf first)");
    }
    const double level = std::nearbyint(v / scale_of(i) + zero_point_of(i));
    const double clipped = std::clamp(level, -h, top + h);
    if (count && clipped != level) {
      row_out = true;
      ++tally->values;
      ++tally->per_element[i];
      // Distance in calibrated ranges (top steps); a one-level grid counts in steps.
      tally->furthest = std::max(tally->furthest, std::abs(level - clipped) / std::max(top, 1.0));
    }
    q.data[i] = static_cast<std::int64_t>(clipped);
  }
  if (row_out) ++tally->rows;
  return q;
}

void InputQuantizer::settle(const RangeTally& tally, std::size_t rows, OutOfRange policy) const {
  if (tally.values == 0 || policy == OutOfRange::kClip) return;
  const bool features = shape.size() == 2 && shape[0] == 1;
  std::ostringstream m;
  m << "input \"" << name << "\": " << tally.values << (tally.values == 1 ? " value" : " values")
    << " in " << tally.rows << " of " << rows << (rows == 1 ? " row" : " rows")
    << " beyond the range the model was calibrated on (";
  std::size_t shown = 0;
  for (const auto& [element, values] : tally.per_element) {
    if (shown == 5) {
      m << ", and " << tally.per_element.size() - shown << " more";
      break;
    }
    m << (shown++ ? ", " : "") << (features ? "feature " : "element ") << element << ": " << values;
  }
  m.precision(3);
  m << "; up to " << tally.furthest << " calibrated ranges past its end)";
  if (policy == OutOfRange::kRaise) {
    m << ": refused (out_of_range=\"raise\"). Calibrate on rows that cover such values, or "
         "choose out_of_range=\"clip\" or \"warn\"";
    throw std::invalid_argument(m.str());
  }
  m << " were clipped to its ends: the encrypted result computes with the clipped values. "
       "Calibrate on rows that cover them; out_of_range=\"raise\" refuses such rows, \"clip\" "
       "silences this";
  warn(WarningKind::kInputRange, m.str());
}

ir::IntTensor InputQuantizer::encode(const ir::IntTensor& levels_in) const {
  if (levels_in.shape != shape || levels_in.data.size() != ir::element_count(shape)) {
    throw std::invalid_argument("input \"" + name + "\": expected levels of shape " +
                                ir::to_string(shape) + ", found " + ir::to_string(levels_in.shape));
  }
  if (encoding == InputEncoding::kInteger) return levels_in;
  const std::size_t per_element = levels();
  if (headroom != 0) {
    throw std::invalid_argument("input \"" + name + "\": a thermometer code has no headroom");
  }
  ir::IntTensor code(encoded_shape());
  for (std::size_t i = 0; i < levels_in.data.size(); ++i) {
    std::int64_t* bits_of = code.data.data() + i * per_element;
    for (std::size_t j = 0; j < per_element; ++j)
      bits_of[j] = levels_in.data[i] >= static_cast<std::int64_t>(j + 1) ? 1 : 0;
  }
  return code;
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
