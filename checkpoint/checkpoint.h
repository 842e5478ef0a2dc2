// HDF5 checkpoints of the RL policy (docs/design.md sections 3 and 7; docs/checkpoint.md is the user-facing
// description of the same layout).
//
// One file per save, DIR/ckpt-<step>.h5: an HDF5 file (readable by h5py / h5dump as is) preceded by a
// 512-byte HDF5 user block that holds our own header: magic, payload length and a CRC-32 (zlib's) of
// every byte after the user block. The reader checks the header before HDF5 parses anything, so a
// truncated or bit-flipped file is reported as such in one line and never reaches HDF5's parser
// (which is not hardened against corrupted input); after that, every object of the layout is checked
// for presence, type, shape and finiteness. HDF5 itself is used through its C API only.
//
// Layout, format_version 1 (L = num_layers, H = num_kv_heads, N = history steps, may be 0):
//   /policy/logits            float32 [L, H]      theta
//   /optimizer/m, /optimizer/v float32 [L, H]     Adam moments; /optimizer attributes: step (int64),
//                                                 lr, betas (float64 [2]), eps, weight_decay
//   /history/step             int64   [N]         strictly increasing learner steps
//   /history/<series>         float64 [N]         reward_mean correct_mean sparsity_expected
//                                                 penalty_weight length_ratio truncated_rate
//   /history/logits           float32 [N, L, H]   theta after each step
//   root attributes: model, run_id, config (variable-length UTF-8 strings), num_layers, num_kv_heads,
//     sink, window, step, policy_version, format_version, data_epoch, data_position (int64),
//     penalty_beta (float64)
//   /rng attributes: <name> = state text (variable-length UTF-8 string), one per RNG stream
//
// Thread safety: all three functions may be called from any thread; HDF5 calls are serialised by a
// mutex inside checkpoint.cpp. One directory is written by one process at a time.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rlkv {

struct CheckpointHistory {  // one entry per learner step so far
  std::vector<int64_t> step;
  std::vector<double> reward_mean, correct_mean, sparsity_expected, penalty_weight, length_ratio, truncated_rate;
  std::vector<float> logits;  // [steps, L, H_kv] flattened
};

struct CheckpointState {
  std::string run_id, model;  // model: the model path or name the run used
  int64_t num_layers = 0, num_kv_heads = 0, sink = 0, window = 0;
  int64_t step = 0, policy_version = 0;
  std::string config;                 // the full INI text of the run, overrides applied (effective_config_text)
  std::vector<float> logits;          // theta [L * H_kv]
  std::vector<float> adam_m, adam_v;  // [L * H_kv]
  int64_t adam_step = 0;
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  double penalty_beta = 0;  // the sparsity controller's current weight
  CheckpointHistory history;
  std::map<std::string, std::string> rng_states;  // name -> opaque state text (e.g. "learner", "data")
  int64_t data_epoch = 0, data_position = 0;      // where the prompt stream is
};

// Version of the HDF5 layout above. Readers accept exactly this version; adding objects that old
// readers may ignore keeps it, removing or changing the meaning of one bumps it (docs/checkpoint.md).
constexpr int kCheckpointFormatVersion = 1;

// Writes DIR/ckpt-<step>.h5 (DIR is created if missing): to a temporary name in DIR, flushed, sealed
// (header + CRC), fsync'ed, closed and renamed over any file of the same name, then the directory is
// fsync'ed. Then deletes the ckpt-<step>.h5 files with the smallest steps so that at most keep_last
// that read back remain (keep_last <= 0: keep all); damaged ones are neither counted nor deleted, and
// the file just written is never deleted. Temporary files left by
// a crashed writer are removed. Returns the final path.
// Throws UserError when the file cannot be written (names the path and the OS error) and when a value
// could not be read back (non-finite logits or Adam state, NUL byte in a string); InternalError
// (RLKV_ASSERT) when the state is inconsistent (vector sizes vs. L x H, history lengths, RNG names).
std::string write_checkpoint(const std::string& dir, const CheckpointState& s, int64_t keep_last);

// Reads and validates a checkpoint. A missing, truncated, corrupted, foreign (not ours / wrong
// format_version) or inconsistent file (shapes disagreeing with num_layers x num_kv_heads, history
// lengths differing, NaN/inf in logits or optimizer state) throws UserError with a one-line message
// naming the file and the problem. HDF5's error stack is never printed.
CheckpointState read_checkpoint(const std::string& path);

// For --resume auto: the newest DIR/ckpt-<step>.h5 (by the step number in its name) that
// read_checkpoint accepts and whose step attribute matches its name. Damaged newer ones are skipped
// and, when `skipped` is given, appended to it as one line each ("<path>: <reason>"). std::nullopt when
// DIR does not exist or holds no valid checkpoint. Throws UserError when DIR exists but is not a
// readable directory.
std::optional<std::string> latest_checkpoint(const std::string& dir, std::vector<std::string>* skipped = nullptr);

// The checkpoints DIR holds by name (DIR/ckpt-<step>.h5, oldest step first), none read: an empty
// list when DIR does not exist.
std::vector<std::string> checkpoint_files(const std::string& dir);

// Recomputes the header (length + CRC) of a checkpoint whose HDF5 part was edited in place (for
// instance with h5py in "r+" mode, which keeps the 512-byte user block but cannot update our CRC).
// Does not validate the content: call read_checkpoint afterwards. Throws UserError when the file has
// no 512-byte user block. docs/checkpoint.md shows the same in a few lines of Python.
void reseal_checkpoint(const std::string& path);

}  // namespace rlkv
