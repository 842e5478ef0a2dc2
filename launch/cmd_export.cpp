// `rlkv export SOURCE --format rlkv-sglang|duo|json|layers [--sparsity S] --output PATH`: a head mask
// for inference engines (masks/mask_export.h) from a checkpoint or any importable mask (rlkv-sglang
// or duo directory / .tsv, rlkv-head-mask/v1 JSON), so a DuoAttention pattern converts to the
// RLKV-SGLang format and back.
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "core/config.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "launch/cli.h"
#include "masks/mask_export.h"
#include "masks/mask_spec.h"
#include "runtime/model_config.h"

namespace po = boost::program_options;

namespace rlkv {

namespace {

// The shortest text that reads back as v: a refused 1.0000001 is not printed as 1.
std::string shortest(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

int cmd_export(int argc, char** argv) {
  po::options_description desc("rlkv export options");
  std::string source, format, output, model_dir;
  double sparsity = 0.5;
  int64_t sink = -1, window = -1, bytes = 2, max_len = 131072;
  desc.add_options()("help,h", "show this help")("source", po::value(&source), "checkpoint, mask directory or file")(
      "format", po::value(&format), "rlkv-sglang | duo | json | layers")(
      "sparsity", po::value(&sparsity)->default_value(0.5), "fraction of KV heads compressed (json, layers)")(
      "output", po::value(&output), "output directory (rlkv-sglang, duo) or file (json, layers)")(
      "sink", po::value(&sink), "S, when the source does not record it")("window", po::value(&window),
                                                                         "W, when the source does not record it")(
      "model", po::value(&model_dir), "model directory: names the model and gives head_dim for kv_bytes_per_token")(
      "kv-bytes", po::value(&bytes)->default_value(2), "bytes per KV element of the engine (kv_bytes_per_token)")(
      "max-seq-len", po::value(&max_len)->default_value(131072), "window of a full layer (layers format)");
  po::positional_options_description pos;
  pos.add("source", 1);
  ParsedArgs args = parse_args(argc, argv, desc, &pos);
  if (args.vm.count("help")) {
    std::cout << "usage: rlkv export SOURCE --format rlkv-sglang|duo|json|layers [--sparsity S] --output PATH\n"
              << desc;
    return 0;
  }
  RLKV_CHECK(args.overrides.empty(), "rlkv export takes no config overrides");
  RLKV_CHECK(!source.empty(), "rlkv export needs a SOURCE (checkpoint, mask directory or file)");
  RLKV_CHECK(!output.empty(), "rlkv export needs --output PATH");
  RLKV_CHECK(format == "rlkv-sglang" || format == "duo" || format == "json" || format == "layers",
             "--format must be rlkv-sglang, duo, json or layers, got '", format, "'");
  RLKV_CHECK(sparsity >= 0 && sparsity <= 1, "--sparsity must be in [0, 1], got ", shortest(sparsity));
  sparsity += 0.0;  // -0 is 0
  RLKV_CHECK(format != "rlkv-sglang" ||
                 (args.vm["sparsity"].defaulted() && !args.vm.count("sink") && !args.vm.count("window")),
             "--format rlkv-sglang writes every head's score (adapter_weights.tsv) and the engine chooses the "
             "sparsity and windows when it loads them: drop --sparsity, --sink and --window");
  RLKV_CHECK(bytes >= 1 && bytes <= 16, "--kv-bytes must be 1..16");
  RLKV_CHECK(max_len >= 1 && max_len <= (int64_t(1) << 31), "--max-seq-len must be in 1..2147483648, got ", max_len);
  // What the export reads must survive it: the source (a mask directory's files) and the model's.
  std::vector<std::string> inputs = model_files(model_dir);
  for (const std::string& f : mask_source_files(source)) inputs.push_back(f);
  const std::vector<std::string> names = export_file_names(format);
  if (names.empty()) {
    check_output_file(output, "--output", inputs);
  } else {  // a directory of fixed names
    check_output_dir_files(output, names, "--output", inputs);
  }
  const ModelConfig mc = model_dir.empty() ? ModelConfig{} : load_model_config(model_dir);
  const HeadScores s = model_dir.empty() ? load_mask_source(source) : load_head_scores_for(source, mc);
  ExportInfo info;
  info.model = s.model;
  RLKV_CHECK(!args.vm.count("sink") || (sink >= 0 && sink <= kMaxCacheSlots), "--sink must be in 0..", kMaxCacheSlots,
             ", got ", sink);
  RLKV_CHECK(!args.vm.count("window") || (window >= 1 && window <= kMaxCacheSlots), "--window must be in 1..",
             kMaxCacheSlots, ", got ", window);
  info.sink = args.vm.count("sink") ? sink : s.sink;
  info.window = args.vm.count("window") ? window : s.window;
  // The windows the mask was learned with are what it is valid for: say so when they are replaced.
  if (args.vm.count("sink") && s.sink >= 0 && sink != s.sink)
    std::fprintf(stderr, "rlkv export: warning: --sink %lld replaces the S = %lld the source records\n",
                 (long long)sink, (long long)s.sink);
  if (args.vm.count("window") && s.window >= 1 && window != s.window)
    std::fprintf(stderr, "rlkv export: warning: --window %lld replaces the W = %lld the source records\n",
                 (long long)window, (long long)s.window);
  info.sparsity = sparsity;
  info.bytes_per_element = bytes;
  info.max_sequence_length = max_len;
  if (!model_dir.empty()) {
    info.head_dim = mc.head_dim;
    info.model = model_dir;
    std::error_code ec;
    if (!s.model.empty() && s.model != model_dir && !std::filesystem::equivalent(s.model, model_dir, ec))
      std::fprintf(stderr, "rlkv export: warning: --model %s replaces the model %s the source records\n",
                   model_dir.c_str(), s.model.c_str());
  }
  const std::vector<uint8_t> keep = mask_at_sparsity(s, sparsity);
  int64_t compressed = 0;
  for (uint8_t k : keep) compressed += k ? 0 : 1;
  if (format == "rlkv-sglang") {
    export_rlkv_sglang(output, s);
  } else if (format == "duo") {
    export_duo(output, s, info);
  } else if (format == "json") {
    export_json(output, s, keep, info);
  } else {
    const double realised = export_layers(output, s, keep, info);
    std::printf(
        "per-head sparsity %.3f (%lld of %lld KV heads compressed) -> per-layer realised sparsity %.3f "
        "(layers whose every KV head is compressed slide; the others keep full caches)\n",
        sparsity, (long long)compressed, (long long)keep.size(), realised);
  }
  if (format == "rlkv-sglang")
    std::fprintf(stderr, "wrote %s (%s, %lld x %lld head scores; the engine chooses the sparsity)\n", output.c_str(),
                 format.c_str(), (long long)s.num_layers, (long long)s.num_kv_heads);
  else
    std::fprintf(stderr, "wrote %s (%s, %lld x %lld heads, %lld compressed at sparsity %s)\n", output.c_str(),
                 format.c_str(), (long long)s.num_layers, (long long)s.num_kv_heads, (long long)compressed,
                 shortest(sparsity).c_str());
  return 0;
}

}  // namespace rlkv
