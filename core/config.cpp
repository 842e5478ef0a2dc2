// Boost.Program_options binding of the Options structs: the only place that knows key names.
#include "core/config.h"

#include <boost/program_options.hpp>

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {

void describe(po::options_description& d, Config& c) {
  auto& m = c.model;
  auto& k = c.cache;
  auto& r = c.rollout;
  auto& t = c.runtime;
  d.add_options()
      ("model.path", po::value(&m.path), "Hugging Face model directory")
      ("model.dtype", po::value(&m.dtype)->default_value(m.dtype), "float32 | bfloat16 | float16")
      ("model.prompt_template", po::value(&m.prompt_template)->default_value(m.prompt_template),
       "text wrapped around each prompt; contains {prompt}")
      ("model.add_special_tokens", po::value(&m.add_special_tokens)->default_value(m.add_special_tokens),
       "let the tokenizer add its special tokens (e.g. BOS)")
      ("cache.sink", po::value(&k.sink)->default_value(k.sink), "sink tokens S of a compressed head")
      ("cache.window", po::value(&k.window)->default_value(k.window), "recent tokens W of a compressed head")
      ("cache.page_size", po::value(&k.page_size)->default_value(k.page_size), "slots per full-pool page")
      ("rollout.temperature", po::value(&r.temperature)->default_value(r.temperature), "0 = greedy")
      ("rollout.top_p", po::value(&r.top_p)->default_value(r.top_p), "nucleus sampling mass")
      ("rollout.top_k", po::value(&r.top_k)->default_value(r.top_k), "top-k sampling, 0 = off")
      ("rollout.max_new_tokens", po::value(&r.max_new_tokens)->default_value(r.max_new_tokens), "length cap")
      ("rollout.seed", po::value(&r.seed)->default_value(r.seed), "sampling seed")
      ("rollout.repetition_every", po::value(&r.repetition_every)->default_value(r.repetition_every),
       "repetition detector period K (0 = off)")
      ("rollout.repetition_min_distinct",
       po::value(&r.repetition_min_distinct)->default_value(r.repetition_min_distinct),
       "stop when the last K tokens hold fewer distinct tokens")
      ("rollout.stop", po::value(&r.stop)->composing(), "stop string (repeatable)")
      ("runtime.threads", po::value(&t.threads)->default_value(t.threads), "CPU threads, 0 = all cores")
      ("runtime.max_batch", po::value(&t.max_batch)->default_value(t.max_batch), "sequences per decode batch");
}

void validate(const Config& c) {
  auto one_of = [](const std::string& v, std::initializer_list<const char*> ok) {
    for (auto* o : ok)
      if (v == o) return true;
    return false;
  };
  RLKV_CHECK(one_of(c.model.dtype, {"float32", "bfloat16", "float16"}),
             "config key model.dtype: expected float32, bfloat16 or float16, got '", c.model.dtype, "'");
  RLKV_CHECK(c.model.prompt_template.find("{prompt}") != std::string::npos,
             "config key model.prompt_template: must contain {prompt}");
  RLKV_CHECK(c.cache.sink >= 0, "config key cache.sink: expected >= 0, got ", c.cache.sink);
  RLKV_CHECK(c.cache.window >= 1, "config key cache.window: expected >= 1, got ", c.cache.window);
  RLKV_CHECK(c.cache.page_size >= 1 && c.cache.page_size <= 4096,
             "config key cache.page_size: expected 1..4096, got ", c.cache.page_size);
  RLKV_CHECK(c.rollout.temperature >= 0 && c.rollout.temperature < 1e6,
             "config key rollout.temperature: expected >= 0, got ", c.rollout.temperature);
  RLKV_CHECK(c.rollout.top_p > 0 && c.rollout.top_p <= 1,
             "config key rollout.top_p: expected in (0, 1], got ", c.rollout.top_p);
  RLKV_CHECK(c.rollout.top_k >= 0, "config key rollout.top_k: expected >= 0, got ", c.rollout.top_k);
  RLKV_CHECK(c.rollout.max_new_tokens >= 1 && c.rollout.max_new_tokens <= (int64_t(1) << 24),
             "config key rollout.max_new_tokens: expected 1..16777216, got ", c.rollout.max_new_tokens);
  RLKV_CHECK(c.rollout.repetition_every >= 0,
             "config key rollout.repetition_every: expected >= 0, got ", c.rollout.repetition_every);
  RLKV_CHECK(c.rollout.repetition_min_distinct >= 0 &&
                 (c.rollout.repetition_every == 0 || c.rollout.repetition_min_distinct <= c.rollout.repetition_every),
             "config key rollout.repetition_min_distinct: expected 0..rollout.repetition_every, got ",
             c.rollout.repetition_min_distinct);
  for (const auto& s : c.rollout.stop) RLKV_CHECK(!s.empty(), "config key rollout.stop: empty stop string");
  RLKV_CHECK(c.runtime.threads >= 0 && c.runtime.threads <= 1024,
             "config key runtime.threads: expected 0..1024, got ", c.runtime.threads);
  RLKV_CHECK(c.runtime.max_batch >= 1 && c.runtime.max_batch <= 65536,
             "config key runtime.max_batch: expected 1..65536, got ", c.runtime.max_batch);
}

// Boost's messages name the option as "--model.path"; we name keys without dashes.
std::string key_of(const po::error_with_option_name& e) {
  std::string k = e.get_option_name();
  while (!k.empty() && k.front() == '-') k.erase(k.begin());
  return k;
}

}  // namespace

Config load_config(const std::string& ini_path, const std::vector<std::string>& overrides) {
  Config c;
  po::options_description desc("rlkv configuration");
  describe(desc, c);
  po::variables_map vm;

  std::vector<std::string> args;
  for (const auto& o : overrides) {
    RLKV_CHECK(!o.empty(), "empty configuration override");
    args.push_back(o.rfind("--", 0) == 0 ? o : "--" + o);
  }
  try {
    // Overrides are stored first: Boost keeps the first value stored for a key.
    po::store(po::command_line_parser(args).options(desc).style(po::command_line_style::long_allow_adjacent |
                                                                po::command_line_style::allow_long)
                  .run(),
              vm);
  } catch (const po::unknown_option& e) {
    throw UserError(str_cat("unknown config key '", key_of(e), "' (command line)"));
  } catch (const po::error_with_option_name& e) {
    throw UserError(str_cat("bad value for config key '", key_of(e), "' (command line): ", e.what()));
  } catch (const po::error& e) {
    throw UserError(str_cat("bad configuration override: ", e.what()));
  }

  if (!ini_path.empty()) {
    std::ifstream f(ini_path);
    RLKV_CHECK(f.good(), "cannot read config file '", ini_path, "'");
    std::stringstream buf;
    buf << f.rdbuf();
    c.source_text = buf.str();
    std::istringstream in(c.source_text);
    try {
      po::store(po::parse_config_file(in, desc, /*allow_unregistered=*/false), vm);
    } catch (const po::unknown_option& e) {
      throw UserError(str_cat(ini_path, ": unknown config key '", key_of(e), "'"));
    } catch (const po::error_with_option_name& e) {
      throw UserError(str_cat(ini_path, ": bad value for config key '", key_of(e), "': ", e.what()));
    } catch (const po::error& e) {
      throw UserError(str_cat(ini_path, ": ", e.what()));
    }
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw UserError(str_cat("configuration: ", e.what()));
  }
  validate(c);
  return c;
}

std::vector<std::string> config_keys() {
  Config c;
  po::options_description desc;
  describe(desc, c);
  std::vector<std::string> keys;
  for (const auto& o : desc.options()) keys.push_back(o->long_name());
  return keys;
}

}  // namespace rlkv
