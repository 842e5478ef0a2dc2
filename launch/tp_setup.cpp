#include "launch/tp_setup.h"

#include <cstdio>

#include "core/collectives.h"
#include "core/config.h"
#include "core/log.h"
#include "runtime/tensor_comm.h"

namespace rlkv {

std::string load_report(const LoadStats& s, int rank, int size) {
  const double mib = 1024.0 * 1024.0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "rank %d/%d: read %.2f MiB of weights from storage, received %.2f MiB, holds %.2f MiB (%.2f s)",
                rank, size, double(s.bytes_read) / mib, double(s.bytes_received) / mib, double(s.weight_bytes) / mib,
                s.seconds);
  return buf;
}

Model load_group_model(const Config& cfg, const std::shared_ptr<Collectives>& group,
                       const std::shared_ptr<Collectives>& node, LoadStats* stats) {
  LoadOptions lo;
  const bool parallel = group && group->size() > 1;
  if (parallel) lo.tp = host_tensor_comm(group);
  if (cfg.model.load == "broadcast" && node && node->size() > 1) lo.reader_group = host_tensor_comm(node);
  LoadStats st;
  Model m = Model::load(cfg.model.path, parse_dtype(cfg.model.dtype), lo, &st);
  if (parallel || lo.reader_group) log_info(load_report(st, parallel ? group->rank() : 0, parallel ? group->size() : 1));
  if (stats) *stats = st;
  return m;
}

}  // namespace rlkv
