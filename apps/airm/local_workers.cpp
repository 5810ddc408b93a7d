#include "local_workers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "airm/error.hpp"

extern char** environ;

namespace airm::cli {
namespace {
std::vector<std::string> g_command_line;
std::atomic<int> g_forward_signal{0};
void remember_signal(int sig) { g_forward_signal = sig; }

// Exit status of a waitpid() result as a shell reports it.
int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}
}  // namespace

void set_command_line(int argc, char** argv) { g_command_line.assign(argv, argv + argc); }
const std::vector<std::string>& command_line() { return g_command_line; }

std::vector<std::string> without_options(const std::vector<std::string>& args, const std::vector<std::string>& drop,
                                         const std::vector<std::string>& flags_without_value) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    bool dropped = false;
    for (const std::string& name : drop) {
      if (a == name) {
        const bool flag = std::find(flags_without_value.begin(), flags_without_value.end(), name) !=
                          flags_without_value.end();
        if (!flag) ++i;  // its value
        dropped = true;
        break;
      }
      if (a.rfind(name + "=", 0) == 0) {
        dropped = true;
        break;
      }
    }
    if (!dropped) out.push_back(a);
  }
  return out;
}

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("local workers", "a socket", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw Error("local workers", "a free port on 127.0.0.1", why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int run_local_workers(int workers, int threads_each, const std::vector<std::string>& args, int grace_seconds) {
  const std::string master = "127.0.0.1:" + std::to_string(free_local_port());
  std::vector<pid_t> pids(static_cast<size_t>(workers), -1);
  std::vector<int> codes(static_cast<size_t>(workers), -1);

  struct sigaction forward{}, ignore{}, old_term{}, old_int{};
  forward.sa_handler = remember_signal;
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGTERM, &forward, &old_term);
  sigaction(SIGINT, &ignore, &old_int);
  auto restore = [&] {
    sigaction(SIGTERM, &old_term, nullptr);
    sigaction(SIGINT, &old_int, nullptr);
  };
  auto signal_all = [&](int sig) {
    for (size_t r = 0; r < pids.size(); ++r) {
      if (pids[r] > 0 && codes[r] < 0) ::kill(pids[r], sig);
    }
  };

  std::fprintf(stderr, "local workers: %d processes, %d thread(s) each, rendezvous at %s\n", workers, threads_each,
               master.c_str());
  for (int r = 0; r < workers; ++r) {
    std::vector<std::string> child{"/proc/self/exe"};
    child.insert(child.end(), args.begin(), args.end());
    for (const std::string& a : {std::string("--world-size"), std::to_string(workers), std::string("--rank"),
                                 std::to_string(r), std::string("--master"), master, std::string("--threads"),
                                 std::to_string(threads_each)}) {
      child.push_back(a);
    }
    if (r > 0) child.push_back("--quiet");
    std::vector<char*> argv;
    for (auto& a : child) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigdefault(&attr, &defaults);  // workers handle SIGINT themselves
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, "/proc/self/exe", nullptr, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      signal_all(SIGTERM);
      for (pid_t p : pids) {
        if (p > 0) ::waitpid(p, nullptr, 0);
      }
      restore();
      throw Error("local workers", "to start worker " + std::to_string(r), std::strerror(rc));
    }
    pids[static_cast<size_t>(r)] = pid;
  }

  int running = workers;
  int first_failure = -1;
  auto failed_at = std::chrono::steady_clock::time_point::max();
  bool killed = false;
  while (running > 0) {
    if (const int sig = g_forward_signal.exchange(0); sig != 0) signal_all(sig);
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      const auto it = std::find(pids.begin(), pids.end(), pid);
      if (it == pids.end()) continue;
      const size_t r = static_cast<size_t>(it - pids.begin());
      codes[r] = exit_code(status);
      --running;
      if (codes[r] != 0 && first_failure < 0) {
        first_failure = static_cast<int>(r);
        failed_at = std::chrono::steady_clock::now();
        if (running > 0) {
          std::fprintf(stderr, "local workers: worker %zu exited with status %d; waiting up to %d s for the others\n",
                       r, codes[r], grace_seconds);
        }
      }
      continue;
    }
    if (!killed && first_failure >= 0 &&
        std::chrono::steady_clock::now() - failed_at > std::chrono::seconds(grace_seconds)) {
      std::fprintf(stderr, "local workers: stopping the workers still running\n");
      signal_all(SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  restore();
  const bool agree = std::all_of(codes.begin(), codes.end(), [&](int c) { return c == codes[0]; });
  if (agree) return codes[0];
  std::string summary;
  for (size_t r = 0; r < codes.size(); ++r) {
    summary += (r ? ", " : "") + std::string("worker ") + std::to_string(r) + ": " + std::to_string(codes[r]);
  }
  std::fprintf(stderr, "error: local workers ended differently (exit status %s)\n", summary.c_str());
  return 1;
}

}  // namespace airm::cli
