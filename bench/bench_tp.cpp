// Tensor-parallel loading and decoding, under mpirun -np N (not a test: it prints numbers).
// Rank 0 writes a random-weight Llama-shaped model (or --model DIR is used), then every rank loads its
// share with model.load = shard and = broadcast and reports: bytes read from storage, bytes received,
// bytes of weights held, anonymous RSS growth and the process's peak RSS, load time; then the group
// decodes a batch and reports the step time. One JSON line per rank and mode, printed by rank 0.
#include <ATen/Parallel.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "comm/collectives.h"
#include "core/error.h"
#include "runtime/generator.h"
#include "runtime/model.h"
#include "runtime/model_writer.h"
#include "runtime/safetensors.h"

namespace po = boost::program_options;
using namespace rlkv;

namespace {

// kB fields of /proc/self/status (RssAnon, VmHWM).
int64_t status_kb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(key.size()));
  return -1;
}

}  // namespace

int main(int argc, char** argv) try {
  MpiSession mpi(&argc, &argv);
  std::shared_ptr<Collectives> world =
      mpi.active() ? std::shared_ptr<Collectives>(mpi_world()) : std::shared_ptr<Collectives>(local_collectives());
  po::options_description desc("bench_tp");
  std::string model_dir, dtype_name_opt;
  int64_t layers, hidden, heads, kv_heads, inter, vocab, batch, steps, threads;
  desc.add_options()("help,h", "show this help")("model", po::value(&model_dir),
                                                 "model directory (default: a random Llama-shaped model)")(
      "layers", po::value(&layers)->default_value(8), "random model: layers")(
      "hidden", po::value(&hidden)->default_value(1024), "random model: hidden size")(
      "heads", po::value(&heads)->default_value(16), "random model: query heads")(
      "kv-heads", po::value(&kv_heads)->default_value(8), "random model: KV heads")(
      "intermediate", po::value(&inter)->default_value(2816), "random model: MLP size")(
      "vocab", po::value(&vocab)->default_value(32000), "random model: vocabulary")(
      "dtype", po::value(&dtype_name_opt)->default_value("float32"), "weights")(
      "batch", po::value(&batch)->default_value(8), "decode batch")(
      "steps", po::value(&steps)->default_value(32), "decode steps")("threads", po::value(&threads)->default_value(1),
                                                                     "CPU threads per rank");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  po::notify(vm);
  at::set_num_threads(int(threads));
  const at::ScalarType dtype = parse_dtype(dtype_name_opt);

  std::string dir = model_dir;
  const std::string tmp = (std::filesystem::temp_directory_path() / "rlkv-bench-tp-model").string();
  if (dir.empty()) {
    dir = tmp;
    if (world->rank() == 0) {
      ModelConfig c;
      c.model_type = "llama";
      c.vocab_size = vocab;
      c.hidden_size = hidden;
      c.intermediate_size = inter;
      c.num_layers = layers;
      c.num_q_heads = heads;
      c.num_kv_heads = kv_heads;
      c.head_dim = hidden / heads;
      c.rms_norm_eps = 1e-5;
      c.max_position_embeddings = 4096;
      c.eos_token_ids = {0};
      save_hf_model(Model::random(c, dtype, 1), dir, "");
    }
    world->barrier();
  }

  nlohmann::json rows = nlohmann::json::array();
  for (const char* mode : {"shard", "broadcast"}) {
    const int64_t anon0 = status_kb("RssAnon");
    LoadOptions lo;
    if (world->size() > 1) lo.tp = host_tensor_comm(world);
    if (std::string(mode) == "broadcast" && world->size() > 1) lo.reader_group = host_tensor_comm(world->split_node());
    LoadStats st;
    world->barrier();
    const Model m = Model::load(dir, dtype, lo, &st);
    const int64_t anon1 = status_kb("RssAnon");
    // Decode: `batch` random 16-token prompts, `steps` greedy tokens, half the heads compressed.
    GeneratorOptions o;
    o.sampling.temperature = 0;
    o.max_new_tokens = steps;
    o.eos_ids = {-1};
    o.max_batch = batch;
    o.num_threads = int(threads);
    const ModelConfig& c = m.config();
    std::vector<uint8_t> half(size_t(c.kv_heads_total()), 1);
    for (size_t i = 0; i < half.size(); i += 2) half[i] = 0;
    std::mt19937 rng(7);
    std::vector<GenerationRequest> reqs;
    for (int64_t b = 0; b < batch; ++b) {
      GenerationRequest r;
      r.id = b;
      for (int t = 0; t < 16; ++t) r.prompt.push_back(int32_t(rng() % uint32_t(c.vocab_size)));
      r.keep = half;
      r.stream = uint64_t(b);
      reqs.push_back(std::move(r));
    }
    Generator g(m, nullptr, o);
    g.run(reqs);  // warm-up
    g.reset_stats();
    g.run(reqs);
    const GenerationStats& gs = g.stats();
    nlohmann::json row = {{"mode", mode},
                          {"rank", world->rank()},
                          {"ranks", world->size()},
                          {"bytes_read", st.bytes_read},
                          {"bytes_received", st.bytes_received},
                          {"weight_bytes", st.weight_bytes},
                          {"rss_anon_growth_bytes", (anon1 - anon0) * 1024},
                          {"vm_hwm_bytes", status_kb("VmHWM") * 1024},
                          {"load_seconds", st.seconds},
                          {"decode_step_ms", 1e3 * gs.decode_seconds / double(std::max<int64_t>(1, gs.decode_steps))},
                          {"batch", batch}};
    for (const auto& s : world->allgather(row.dump())) rows.push_back(nlohmann::json::parse(s));
  }
  if (world->rank() == 0) {
    SafetensorsModelFiles files(dir);
    std::printf("{\"model_tensor_bytes\": %llu}\n", (unsigned long long)files.total_bytes());
    for (const auto& r : rows) std::printf("%s\n", r.dump().c_str());
    if (model_dir.empty()) std::filesystem::remove_all(tmp);
  }
  world->barrier();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_tp: %s\n", e.what());
  return 1;
}
