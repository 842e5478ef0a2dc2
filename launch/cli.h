// Shared command-line plumbing of the rlkv subcommands: each subcommand declares its own flags;
// any `--section.key=value` it does not declare is a configuration override (core/config.h).
#pragma once

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace rlkv {

struct ParsedArgs {
  boost::program_options::variables_map vm;
  std::vector<std::string> overrides;  // "section.key=value"
};

// Parses argv (after the subcommand name) against `desc` (+ positional names if any). Unknown
// flags without a '.' are usage errors (UserError) naming the flag.
ParsedArgs parse_args(int argc, char** argv, const boost::program_options::options_description& desc,
                      const boost::program_options::positional_options_description* positional = nullptr);

struct Config;
struct GeneratorOptions;
struct DatasetFields;

// Generation settings of a config (sampling, caps, stop rules, cache windows, batch, threads): the one
// place that maps those keys onto the generator.
GeneratorOptions generator_options(const Config& cfg);

// A --seed option read as a signed number (an unsigned parse takes -1 as 2^64 - 1): >= 0, else a
// UserError.
uint64_t seed_option(int64_t seed);

// The dataset's field names of a config (data.*_field, defaulted from data.format when it is loaded).
DatasetFields dataset_fields(const Config& cfg);

// Sets LibTorch's intra-op threads of this process: runtime.threads when given, else the node's cores
// shared evenly by the `ranks_on_node` ranks on it (at least 1). Returns the count.
int set_intra_op_threads(const Config& cfg, int ranks_on_node = 1);

// Intra-op threads of each actor thread (runtime/model_thread.h): runtime.threads when given, else
// the node's cores shared evenly by its `ranks_on_node` ranks and each rank's placement.actors
// actor threads (at least 1), so that actor threads never oversubscribe the cores.
int actor_thread_share(const Config& cfg, int ranks_on_node);

int cmd_generate(int argc, char** argv);
int cmd_score(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_actor(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_prepare(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_toy(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_duo_train(int argc, char** argv);

}  // namespace rlkv
