// The lock that autograd's AccumulateGrad holds while it writes a leaf's .grad (the accumulator
// node's Node::mutex_), taken by every shim call that reads or writes leaves' gradients: a
// backward running on another thread then never replaces a gradient while the shim copies,
// zeroes or frees it (which would be a use after free). Internal to the shim.
#pragma once

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

namespace lt {

class GradLock {
  public:
    // Locks the accumulators of `leaves` (those that require a gradient; a tensor with a grad_fn
    // has none), in address order, so two callers locking overlapping sets cannot deadlock.
    explicit GradLock(const std::vector<at::Tensor>& leaves) {
        for (const at::Tensor& t : leaves) add(t);
        lock_all();
    }
    explicit GradLock(const at::Tensor& leaf) {
        add(leaf);
        lock_all();
    }
    GradLock(const GradLock&) = delete;
    GradLock& operator=(const GradLock&) = delete;
    ~GradLock() {
        for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) mutex(**it).unlock();
    }

  private:
    // Node::mutex_ is protected; a pointer to it formed inside a subclass reaches it.
    struct Access : torch::autograd::Node {
        static std::mutex& of(torch::autograd::Node& n) { return n.*(&Access::mutex_); }
    };
    static std::mutex& mutex(torch::autograd::Node& n) { return Access::of(n); }

    void add(const at::Tensor& t) {
        if (!t.defined() || !t.requires_grad() || t.grad_fn()) return;
        // grad_accumulator creates the node when no graph holds it yet, and while this lock holds
        // it every new graph on the leaf shares it (the leaf keeps a weak reference).
        if (auto node = torch::autograd::impl::grad_accumulator(t)) nodes_.push_back(std::move(node));
    }

    void lock_all() {
        std::sort(nodes_.begin(), nodes_.end());
        nodes_.erase(std::unique(nodes_.begin(), nodes_.end()), nodes_.end());
        for (size_t i = 0; i < nodes_.size(); ++i) {
            try {
                mutex(*nodes_[i]).lock();
            } catch (...) {
                for (size_t j = i; j-- > 0;) mutex(*nodes_[j]).unlock();
                throw;
            }
        }
    }

    std::vector<std::shared_ptr<torch::autograd::Node>> nodes_;
};

}  // namespace lt
