// c10d data parallelism: TCPStore rendezvous, ProcessGroupGloo collectives
// on one flat buffer per call.
#include "airm/train/distributed.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "airm/error.hpp"

namespace airm {

bool distributed_available() { return true; }

void DistributedOptions::validate() const {
  const std::string where = "distributed options";
  if (world_size < 1) throw Error(where, "world size >= 1", std::to_string(world_size));
  if (rank < 0 || rank >= world_size) {
    throw Error(where, "a rank in [0, " + std::to_string(world_size) + ")", std::to_string(rank));
  }
  parse_host_port(master);
  if (timeout.count() <= 0) throw Error(where, "a timeout > 0", std::to_string(timeout.count()) + " ms");
}

std::pair<std::string, int> parse_host_port(const std::string& text) {
  const auto colon = text.rfind(':');
  const std::string expected = "HOST:PORT with PORT in [1, 65535]";
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) throw Error("--master", expected, "'" + text + "'");
  const std::string port_text = text.substr(colon + 1);
  if (port_text.find_first_not_of("0123456789") != std::string::npos || port_text.size() > 5) {
    throw Error("--master", expected, "'" + text + "'");
  }
  const int port = std::stoi(port_text);
  if (port < 1 || port > 65535) throw Error("--master", expected, "'" + text + "'");
  return {text.substr(0, colon), port};
}

namespace {
bool is_loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0; }
}  // namespace

struct DistributedGroup::Impl {
  DistributedOptions options;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;

  std::string who() const { return "rank " + std::to_string(options.rank) + " of " + std::to_string(options.world_size); }

  // Waits for one collective; a failure (a rank gone, a timeout) becomes airm::Error.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      work->wait(options.timeout);
    } catch (const std::exception& e) {
      throw Error(who(), std::string(what) + " with the other ranks failed: another rank has stopped, or the "
                         "network failed (" + e.what() + ")");
    }
  }

  // One contiguous fp32/fp64 buffer per dtype would be general; training tensors are one dtype.
  static torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
    std::vector<torch::Tensor> flat;
    flat.reserve(tensors.size());
    for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}).to(tensors.front().options()));
    return torch::cat(flat);
  }
  static void unflatten(const torch::Tensor& buffer, std::vector<torch::Tensor>& tensors) {
    torch::NoGradGuard no_grad;
    int64_t offset = 0;
    for (auto& t : tensors) {
      const int64_t n = t.numel();
      t.copy_(buffer.narrow(0, offset, n).view_as(t));
      offset += n;
    }
  }
};

DistributedGroup::DistributedGroup(const DistributedOptions& options) : impl_(std::make_unique<Impl>()) {
  options.validate();
  impl_->options = options;
  const auto [host, port] = parse_host_port(options.master);
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(port);
    store_options.isServer = options.rank == 0;
    store_options.numWorkers = static_cast<std::size_t>(options.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = options.timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(host, store_options);

    auto group_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
    if (!options.interface.empty()) {
      group_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(options.interface));
    } else if (is_loopback(host)) {
      group_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      group_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    group_options->threads = 1;
    impl_->group =
        c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, options.rank, options.world_size, group_options);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(impl_->who(), "to join the group at " + options.master + " within " +
                                  std::to_string(options.timeout.count() / 1000) + " s",
                "an error: " + std::string(e.what()));
  }
}

DistributedGroup::~DistributedGroup() = default;

int DistributedGroup::rank() const { return impl_->options.rank; }
int DistributedGroup::world_size() const { return impl_->options.world_size; }

void DistributedGroup::average(std::vector<torch::Tensor>& tensors) {
  if (tensors.empty() || impl_->options.world_size == 1) return;
  std::vector<torch::Tensor> buffer{Impl::flatten(tensors)};
  impl_->wait(impl_->group->allreduce(buffer), "the gradient all-reduce");
  buffer[0].div_(impl_->options.world_size);
  Impl::unflatten(buffer[0], tensors);
}

void DistributedGroup::broadcast(std::vector<torch::Tensor>& tensors) {
  if (tensors.empty() || impl_->options.world_size == 1) return;
  std::vector<torch::Tensor> buffer{Impl::flatten(tensors)};
  impl_->wait(impl_->group->broadcast(buffer), "the parameter broadcast");
  Impl::unflatten(buffer[0], tensors);
}

bool DistributedGroup::any(bool local) {
  if (impl_->options.world_size == 1) return local;
  std::vector<torch::Tensor> flag{torch::full({1}, local ? 1 : 0, torch::kInt)};
  c10d::AllreduceOptions max;
  max.reduceOp = c10d::ReduceOp::MAX;
  impl_->wait(impl_->group->allreduce(flag, max), "agreeing on a stop");
  return flag[0].item<int>() != 0;
}

void DistributedGroup::sum(torch::Tensor& tensor) {
  if (impl_->options.world_size == 1) return;
  std::vector<torch::Tensor> buffer{tensor.is_contiguous() ? tensor : tensor.contiguous()};
  impl_->wait(impl_->group->allreduce(buffer), "a batch-norm all-reduce");
  if (!buffer[0].is_same(tensor)) tensor.copy_(buffer[0]);
}

void DistributedGroup::barrier() {
  if (impl_->options.world_size == 1) return;
  impl_->wait(impl_->group->barrier(), "the barrier");
}

DistributedHooks DistributedGroup::hooks() {
  DistributedHooks hooks;
  hooks.sync_gradients = [this](std::vector<torch::Tensor>& gradients) { average(gradients); };
  hooks.broadcast_parameters = [this](std::vector<torch::Tensor>& parameters) { broadcast(parameters); };
  hooks.any = [this](bool local) { return any(local); };
  hooks.sum = [this](torch::Tensor& tensor) { sum(tensor); };
  return hooks;
}

}  // namespace airm
