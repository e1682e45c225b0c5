// The scikit-learn fixtures' loaders live with the CLI (fheml demo uses them too).
#pragma once

#include "fheml/cli/datasets.h"

namespace fheml {
namespace test_data = datasets;
}  // namespace fheml
