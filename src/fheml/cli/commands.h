#pragma once

namespace CLI {
class App;
}

namespace fheml::cli {

// `fheml bench`: latency, throughput and key sizes of key switch + bootstrap per precision.
void add_bench_command(CLI::App& app);
// `fheml demo`: an end-to-end encrypted prediction on a real data set (the quick start's job).
void add_demo_command(CLI::App& app);

}  // namespace fheml::cli
