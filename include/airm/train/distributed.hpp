// Data-parallel training over LibTorch's c10d: a Gloo process group
// rendezvoused through a TCPStore on the master (rank 0's host). Every rank
// runs the same train() with DistributedHooks from here: gradients are
// all-reduced (mean), parameters broadcast from rank 0 after start/resume,
// and stop decisions (non-finite values, signals) are agreed on.
//
// A rank that dies or hangs makes the others' next collective fail (Gloo
// sees the closed connection at once; a silent rank after `timeout`): the
// hooks then throw airm::Error naming this rank and the operation, so
// `airm train` exits 1 with a clear message instead of hanging.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "airm/train/trainer.hpp"

namespace airm {

struct DistributedOptions {
  int world_size = 1;
  int rank = 0;
  std::string master = "127.0.0.1:29500";  // HOST:PORT of rank 0's rendezvous store
  // Network interface Gloo binds to (e.g. "eth0"); empty: loopback when the
  // master is local, else the address this machine's hostname resolves to.
  std::string interface;
  // Longest wait for the other ranks: rendezvous and each collective.
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};

  // Throws airm::Error naming the field.
  void validate() const;
};

// False when built with -DAIRM_WITH_C10D=OFF (DistributedGroup then throws).
bool distributed_available();

// HOST:PORT -> (host, port); throws airm::Error on anything else.
std::pair<std::string, int> parse_host_port(const std::string& text);

class DistributedGroup {
 public:
  // Joins the group (blocks until all world_size ranks have joined or the
  // timeout passes: airm::Error).
  explicit DistributedGroup(const DistributedOptions& options);
  ~DistributedGroup();
  DistributedGroup(const DistributedGroup&) = delete;
  DistributedGroup& operator=(const DistributedGroup&) = delete;

  // Hooks for TrainerOptions::distributed; valid while this object lives.
  DistributedHooks hooks();

  // Collectives over all ranks (in place). Each throws airm::Error if another
  // rank is gone.
  void average(std::vector<torch::Tensor>& tensors);          // mean over ranks
  void broadcast(std::vector<torch::Tensor>& tensors);        // rank 0's values
  bool any(bool local);                                        // logical or over ranks
  void sum(torch::Tensor& tensor);                             // sum over ranks
  void barrier();

  int rank() const;
  int world_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace airm
