#include "launch/failure.h"

#include <c10/util/Exception.h>

#include <chrono>
#include <cstdio>
#include <new>
#include <thread>

#include "comm/collectives.h"
#include "core/error.h"

namespace rlkv {
namespace {

std::string first_line(const char* what) {
  std::string s = what ? what : "";
  const size_t nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace

int report_failure(const std::string& cmd, std::exception_ptr error, const std::string& where) {
  const std::string prefix = "rlkv " + cmd + (where.empty() ? "" : " (" + where + ")");
  try {
    std::rethrow_exception(error);
  } catch (const UserError& e) {
    std::fprintf(stderr, "%s: error: %s\n", prefix.c_str(), first_line(e.what()).c_str());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "%s: failed: %s\n", prefix.c_str(), first_line(e.what_without_backtrace()).c_str());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: failed: out of memory\n", prefix.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: failed: %s\n", prefix.c_str(), first_line(e.what()).c_str());
  } catch (...) {
    std::fprintf(stderr, "%s: failed: an unknown exception\n", prefix.c_str());
  }
  return 1;
}

int run_on_ranks(const std::string& cmd, const MpiSession& mpi, const std::function<int()>& body) {
  if (!mpi.active() || mpi.world_size() <= 1) return body();
  try {
    return body();
  } catch (...) {
    // An error every rank meets (a bad setting) is then said once: rank 0 says it and ends the job
    // while the others wait; an error of another rank alone is said a second later.
    if (mpi.world_rank() != 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    const int code =
        report_failure(cmd, std::current_exception(),
                       "rank " + std::to_string(mpi.world_rank()) + " of " + std::to_string(mpi.world_size()));
    std::fflush(stderr);
    mpi.abort(code);
  }
}

}  // namespace rlkv
