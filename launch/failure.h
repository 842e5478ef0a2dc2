// How a failed command ends: one line on stderr and an exit status (2: bad usage or bad input, a
// UserError; 1: any other failure). main() applies it to every subcommand; under mpirun a failing
// rank applies it itself and ends the job (run_on_ranks).
#pragma once

#include <exception>
#include <functional>
#include <string>

namespace rlkv {

class MpiSession;

// Prints "rlkv CMD: error: ..." (or "failed: ...") for `error`, with `where` before the message
// when given (e.g. "rank 2 of 4"), and returns the exit status.
int report_failure(const std::string& cmd, std::exception_ptr error, const std::string& where = "");

// Runs `body`. Under mpirun, an error on this rank is reported (naming the rank; rank 0 first when
// it fails too, so that an error of every rank is said once) and ends every rank with MPI_Abort: the other ranks would
// otherwise wait for this one in a collective, or for its messages, forever. So `body` returns (not throws) where every
// rank stops in order, e.g. on a SIGINT / SIGTERM that mpirun forwards to all of them.
int run_on_ranks(const std::string& cmd, const MpiSession& mpi, const std::function<int()>& body);

}  // namespace rlkv
