// Built with -DAIRM_WITH_C10D=OFF: no process group; asking for one is an error.
#include "airm/train/distributed.hpp"

#include "airm/error.hpp"

namespace airm {

bool distributed_available() { return false; }

void DistributedOptions::validate() const {}

std::pair<std::string, int> parse_host_port(const std::string& text) {
  throw Error("--master " + text, "a build with data-parallel training",
              "one configured with -DAIRM_WITH_C10D=OFF");
}

struct DistributedGroup::Impl {};

DistributedGroup::DistributedGroup(const DistributedOptions&) {
  throw Error("airm", "a build with data-parallel training (c10d Gloo)", "one configured with -DAIRM_WITH_C10D=OFF");
}
DistributedGroup::~DistributedGroup() = default;
DistributedHooks DistributedGroup::hooks() { return {}; }
void DistributedGroup::average(std::vector<torch::Tensor>&) {}
void DistributedGroup::broadcast(std::vector<torch::Tensor>&) {}
bool DistributedGroup::any(bool local) { return local; }
void DistributedGroup::sum(torch::Tensor&) {}
void DistributedGroup::barrier() {}
int DistributedGroup::rank() const { return 0; }
int DistributedGroup::world_size() const { return 1; }

}  // namespace airm
