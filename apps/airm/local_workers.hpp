// `airm train --local-workers N`: N processes of this program on this
// machine, ranks 0..N-1 of one c10d group.
#pragma once

#include <string>
#include <vector>

namespace airm::cli {

// This process's command line (set by main).
void set_command_line(int argc, char** argv);
const std::vector<std::string>& command_line();

// The command line without the options named in `drop` (each given as
// "--name VALUE", "--name=VALUE" or, for flags, "--name"): flags_without_value
// lists those of them that take no value.
std::vector<std::string> without_options(const std::vector<std::string>& args, const std::vector<std::string>& drop,
                                         const std::vector<std::string>& flags_without_value);

// A TCP port free on 127.0.0.1 at the time of the call.
int free_local_port();

// Starts `workers` copies of /proc/self/exe with `args` (argv[1..]) plus
// "--world-size N --rank R --master 127.0.0.1:PORT --threads T" (and
// --quiet for ranks > 0), waits for all of them. SIGTERM to this process is
// passed on; SIGINT (Ctrl-C reaches the whole process group) is left to the
// workers. If one fails, the others are given `grace_seconds` to notice
// (their next all-reduce fails) and are then killed. Returns rank 0's exit
// status if every worker agrees, else 1 with a message on stderr.
int run_local_workers(int workers, int threads_each, const std::vector<std::string>& args, int grace_seconds = 60);

}  // namespace airm::cli
