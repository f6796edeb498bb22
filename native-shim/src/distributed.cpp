// Collective communication for data-parallel training: LibTorch's own c10d engine (what
// PyTorch's DistributedDataParallel uses), a TCPStore rendezvous and a Gloo process group over
// TCP. Every collective runs with a timeout and reports failures as statuses; after a failed
// collective the group is marked broken (the ranks are out of step), closes its connections and
// refuses further collectives.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "grad_lock.h"
#include "internal.h"
#include "tcp_wait.h"

// ------------------------------------------------------------------ LibTorch version compat
// LibTorch 1.13 (Debian) and 2.x both offer ProcessGroupGloo(store, rank, size, options), its
// collectives returning c10::intrusive_ptr<Work> with Work::wait(timeout), and
// TCPStore(host, TCPStoreOptions). In 2.x ProcessGroupGloo is a c10d::Backend rather than a
// c10d::ProcessGroup, which this file never relies on; the differences it does meet live here.
namespace compat {

// After a failure the group closes its Gloo connections itself (c10d has no abort for Gloo):
// the peers' reads then fail at once ("connection closed") instead of waiting for their own
// timeouts. A collective of this rank still inside Gloo ends at the group's timeout, which Gloo
// enforces. contexts_ is a protected member of ProcessGroupGloo in 1.13 and 2.x alike.
class Group : public c10d::ProcessGroupGloo {
public:
    using c10d::ProcessGroupGloo::ProcessGroupGloo;

    void close_connections() noexcept {
        for (auto& ctx : contexts_) {
            if (!ctx) continue;
            for (int i = 0; i < ctx->size; ++i) {
                if (i == ctx->rank) continue;
                try {
                    auto& pair = ctx->getPair(i);
                    if (pair) pair->close();
                } catch (...) {
                    // already closed or never connected
                }
            }
        }
    }

    // The timeout of Gloo's own waits from now on (the group's options and every context's
    // default, which collectives without a timeout of their own fall back to).
    void set_timeout(std::chrono::milliseconds timeout) {
        options_->timeout = timeout;
        for (auto& ctx : contexts_)
            if (ctx) ctx->setTimeout(timeout);
    }
};

using WorkPtr = c10::intrusive_ptr<c10d::Work>;

inline c10d::TCPStoreOptions store_options(uint16_t port, bool server, size_t workers,
                                           std::chrono::milliseconds timeout) {
    c10d::TCPStoreOptions o;
    o.port = port;
    o.isServer = server;
    o.numWorkers = workers;
    // Rank 0 does not wait for the others here: LibTorch 1.13 gives up that wait silently after
    // the timeout, and Gloo's connection phase waits for every rank (bounded) anyway.
    o.waitWorkers = false;
    // 1.13's client truncates its connect timeout to whole seconds (0 s for anything under one):
    // round up. The connect itself bounds nothing here: the caller has waited for the listener.
    o.timeout = std::chrono::ceil<std::chrono::seconds>(timeout);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    o.useLibUV = false;  // 2.4+ default to a libuv server; keep the classic one 1.13 has (untested)
#endif
    return o;
}

}  // namespace compat

struct lt_process_group {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<compat::Group> group;
    int32_t rank = 0;
    int32_t size = 0;
    std::chrono::milliseconds timeout{0};
    std::atomic<bool> broken{false};
    std::string broken_reason;
};

namespace {

// A failed collective or rendezvous: the status says whether it timed out or a peer failed.
struct CommError : std::runtime_error {
    CommError(lt_status s, const std::string& m) : std::runtime_error(m), status(s) {}
    lt_status status;
};

bool mentions_timeout(const std::string& m) {
    std::string l(m);
    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
    return l.find("timed out") != std::string::npos || l.find("timeout") != std::string::npos;
}

// Runs a communication step, turning LibTorch's and Gloo's exceptions into a CommError whose
// status tells a timeout from another communication failure.
template <class Body>
void communicate(const char* what, Body&& body) {
    try {
        body();
    } catch (const CommError&) {
        throw;
    } catch (const std::exception& e) {
        std::string m = std::string(what) + ": " + e.what();
        if (const auto* ce = dynamic_cast<const c10::Error*>(&e))
            m = std::string(what) + ": " + ce->what_without_backtrace();
        throw CommError(mentions_timeout(m) ? LT_ERR_TIMEOUT : LT_ERR_COMMUNICATION, m);
    }
}

std::chrono::milliseconds timeout_of(const lt_process_group* pg, int64_t timeout_ms) {
    if (timeout_ms < 0) throw std::invalid_argument("timeout_ms must be >= 0, got " + std::to_string(timeout_ms));
    return timeout_ms == 0 ? pg->timeout : std::chrono::milliseconds(timeout_ms);
}

void check_usable(const lt_process_group* pg) {
    lt::need(pg, "pg");
    if (pg->broken.load())
        throw CommError(LT_ERR_COMMUNICATION,
                        "the process group is unusable after an earlier failure (" + pg->broken_reason + ")");
}

// Waits for a collective, bounded by the timeout.
void wait(compat::WorkPtr work, std::chrono::milliseconds timeout) {
    if (!work->wait(timeout))
        throw CommError(LT_ERR_COMMUNICATION, "the collective was aborted");
}

// Runs a collective; a failure marks the group broken and closes its connections, so that the
// peers fail at once instead of waiting for their own timeouts.
template <class Body>
void collective(lt_process_group* pg, const char* what, Body&& body) {
    check_usable(pg);
    try {
        communicate(what, body);
    } catch (const CommError& e) {
        pg->broken_reason = e.what();
        pg->broken.store(true);
        pg->group->close_connections();
        throw;
    }
}

std::vector<at::Tensor> tensors(const lt_tensor* const* ts, int64_t count, const char* name) {
    if (count < 0) throw std::invalid_argument(std::string("negative count for '") + name + "'");
    if (count > 0) lt::need(ts, name);
    std::vector<at::Tensor> v;
    v.reserve(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
        at::Tensor t = *lt::T(ts[i], name);
        if (!t.device().is_cpu() || t.layout() != at::kStrided)
            throw std::invalid_argument(std::string(name) + "[" + std::to_string(i) +
                                        "] is not a dense CPU tensor (Gloo collectives here take those only)");
        v.push_back(std::move(t));
    }
    return v;
}

// Tensors of one dtype flattened into buckets of at most kBucketBytes (a tensor larger than
// that gets a bucket of its own); the order is the same on every rank given the same list.
constexpr int64_t kBucketBytes = 64LL << 20;

std::vector<std::vector<size_t>> buckets(const std::vector<at::Tensor>& ts) {
    std::map<at::ScalarType, std::vector<size_t>> by_type;
    for (size_t i = 0; i < ts.size(); ++i) by_type[ts[i].scalar_type()].push_back(i);
    std::vector<std::vector<size_t>> out;
    for (auto& [type, idx] : by_type) {
        std::vector<size_t> cur;
        int64_t bytes = 0;
        for (size_t i : idx) {
            const int64_t b = static_cast<int64_t>(ts[i].nbytes());
            if (!cur.empty() && bytes + b > kBucketBytes) {
                out.push_back(std::move(cur));
                cur.clear();
                bytes = 0;
            }
            cur.push_back(i);
            bytes += b;
        }
        if (!cur.empty()) out.push_back(std::move(cur));
    }
    return out;
}

at::Tensor flatten(const std::vector<at::Tensor>& ts, const std::vector<size_t>& idx) {
    std::vector<at::Tensor> parts;
    parts.reserve(idx.size());
    for (size_t i : idx) parts.push_back(ts[i].reshape({-1}));
    return at::cat(parts);
}

void unflatten(const at::Tensor& flat, std::vector<at::Tensor>& ts, const std::vector<size_t>& idx) {
    at::NoGradGuard no_grad;
    int64_t off = 0;
    for (size_t i : idx) {
        const int64_t n = ts[i].numel();
        ts[i].copy_(flat.narrow(0, off, n).view(ts[i].sizes()));
        off += n;
    }
}

// ------------------------------------------------------------------ collective fingerprints
// Before every collective the ranks check that they are about to do the same thing, as PyTorch's
// ProcessGroupWrapper does under TORCH_DISTRIBUTED_DEBUG=DETAIL. Gloo trusts its peers: a buffer
// of another size makes its I/O thread throw, which terminates the process, and buffers of the
// same byte count but another dtype or split are silently mixed. So each rank describes its call
// in a few words (kind, option, count, dtypes, shapes), and one all-reduce (MAX) of the words and
// their negations gives every rank each word's maximum and minimum: the ranks agree iff they are
// equal. That all-reduce has the same size on every rank, so it cannot mismatch itself, and every
// rank learns the verdict: on a mismatch all of them fail together, still in step. A rank whose
// own side of the call is bad (an argument its preparation refuses) takes part all the same,
// saying so in the first word, so the others fail at once too instead of at the timeout.

enum Kind : int64_t { kAllReduce = 1, kBroadcast = 2, kBarrier = 3 };
enum Word { kRefusedWord, kKindWord, kOptionWord, kCountWord, kDtypesWord, kShapesWord, kWords };

struct Fingerprint {
    int64_t words[kWords] = {};
    std::string local;  // this rank's call, for the message
};

// FNV-1a over 64-bit values, kept to 62 bits so that a word's negation cannot overflow.
struct Hash {
    uint64_t h = 14695981039346656037ULL;
    void add(uint64_t v) {
        for (int i = 0; i < 8; ++i, v >>= 8) h = (h ^ (v & 0xff)) * 1099511628211ULL;
    }
    int64_t word() const { return static_cast<int64_t>(h >> 2); }
};

// PyTorch's name of a dtype (torch.float32 is "float32"), LibTorch's for the rare others.
std::string dtype_name(at::ScalarType t) {
    switch (t) {
        case at::kFloat: return "float32";
        case at::kDouble: return "float64";
        case at::kHalf: return "float16";
        case at::kBFloat16: return "bfloat16";
        case at::kLong: return "int64";
        case at::kInt: return "int32";
        case at::kShort: return "int16";
        case at::kChar: return "int8";
        case at::kByte: return "uint8";
        case at::kBool: return "bool";
        default: return c10::toString(t);
    }
}

Fingerprint fingerprint(Kind kind, int64_t option, const std::vector<at::Tensor>& ts) {
    Fingerprint fp;
    fp.words[kKindWord] = kind;
    fp.words[kOptionWord] = option;
    fp.words[kCountWord] = static_cast<int64_t>(ts.size());
    Hash dtypes, shapes;
    fp.local = kind == kAllReduce ? (option == LT_REDUCE_AVG ? "all_reduce (average)" : "all_reduce (sum)")
               : kind == kBroadcast ? "broadcast from rank " + std::to_string(option)
                                    : "barrier";
    if (kind != kBarrier) fp.local += " of " + std::to_string(ts.size()) + " tensor" + (ts.size() == 1 ? "" : "s");
    for (size_t i = 0; i < ts.size(); ++i) {
        dtypes.add(static_cast<uint64_t>(ts[i].scalar_type()));
        shapes.add(static_cast<uint64_t>(ts[i].dim()));
        for (int64_t d : ts[i].sizes()) shapes.add(static_cast<uint64_t>(d));
        if (i < 4) {
            fp.local += std::string(i == 0 ? ": " : ", ") + dtype_name(ts[i].scalar_type()) + "[";
            for (int64_t d = 0; d < ts[i].dim(); ++d) fp.local += (d ? ", " : "") + std::to_string(ts[i].size(d));
            fp.local += "]";
        } else if (i == 4) {
            fp.local += ", ...";
        }
    }
    fp.words[kDtypesWord] = dtypes.word();
    fp.words[kShapesWord] = shapes.word();
    return fp;
}

// Compares this rank's fingerprint with every other rank's (one all-reduce of 2·kWords int64).
// Returns when all agree, or when this rank refused its call (its own error follows); throws
// std::invalid_argument on every other rank when a rank refused, and on every rank when the
// calls differ, naming the first word that differs. With one rank there is nothing to compare.
// A failure to communicate breaks the group as any collective's does.
void agree(lt_process_group* pg, const Fingerprint& fp, const char* what, std::chrono::milliseconds timeout) {
    if (pg->size == 1) return;
    std::vector<at::Tensor> words{at::empty({2 * kWords}, at::kLong)};
    int64_t* w = words[0].data_ptr<int64_t>();
    for (int i = 0; i < kWords; ++i) {
        w[i] = fp.words[i];
        w[kWords + i] = -fp.words[i];
    }
    collective(pg, what, [&] {
        c10d::AllreduceOptions o;
        o.reduceOp = c10d::ReduceOp::MAX;
        o.timeout = timeout;
        wait(pg->group->allreduce(words, o), timeout);
    });
    if (w[kRefusedWord] != 0) {
        if (fp.words[kRefusedWord] != 0) return;
        throw std::invalid_argument("rank " + std::to_string(w[kRefusedWord] - 1) + " refused its side of this " + what +
                                    " (its own error says why); the group stays usable");
    }
    static const char* const aspects[kWords] = {"", "collectives", "", "numbers of tensors", "dtypes", "shapes"};
    for (int i = 0; i < kWords; ++i) {
        if (w[i] == -w[kWords + i]) continue;  // max == min
        const char* aspect = i != kOptionWord ? aspects[i] : fp.words[kKindWord] == kBroadcast ? "roots" : "reduce ops";
        throw std::invalid_argument(std::string("the ranks differ in their ") + aspect + " (this rank (" +
                                    std::to_string(pg->rank) + "): " + fp.local +
                                    "); every rank must make the same collective calls in the same order, with "
                                    "tensors of the same dtypes and shapes");
    }
}

// A collective in three steps: this rank's preparation (its checks; the tensors it contributes),
// the fingerprint check, then the communication. A preparation that throws still takes part in
// the check as a refusal, so that no rank waits for this one until the timeout; the group stays
// in step and usable.
template <class Prepare, class Run>
void checked_collective(lt_process_group* pg, const char* what, std::chrono::milliseconds timeout, Kind kind,
                        int64_t option, Prepare&& prepare, Run&& run) {
    check_usable(pg);
    std::vector<at::Tensor> ts;
    std::exception_ptr refused;
    try {
        ts = prepare();
    } catch (...) {
        refused = std::current_exception();
        ts.clear();
    }
    Fingerprint fp = fingerprint(kind, option, ts);
    if (refused) fp.words[kRefusedWord] = pg->rank + 1;
    agree(pg, fp, what, timeout);
    if (refused) std::rethrow_exception(refused);
    run(ts);
}

// The checks of a reduction that depend on this rank's arguments alone.
void check_reduction(const std::vector<at::Tensor>& ts, int32_t op) {
    if (op != LT_REDUCE_SUM && op != LT_REDUCE_AVG)
        throw std::invalid_argument("unknown reduce op " + std::to_string(op));
    if (op == LT_REDUCE_AVG)
        for (const auto& t : ts)
            if (!at::isFloatingType(t.scalar_type()))
                throw std::invalid_argument("an average needs floating-point tensors, got " +
                                            std::string(c10::toString(t.scalar_type())));
}

// Sums (or averages) every tensor of ts across the group, one flat buffer per bucket; the ranks
// have agreed on the call.
void reduce_buckets(lt_process_group* pg, std::vector<at::Tensor>& ts, int32_t op, std::chrono::milliseconds timeout) {
    for (const auto& b : buckets(ts)) {
        std::vector<at::Tensor> flat{flatten(ts, b)};
        collective(pg, "all_reduce", [&] {
            c10d::AllreduceOptions o;
            o.reduceOp = c10d::ReduceOp::SUM;  // Gloo has no AVG: divide after the sum
            o.timeout = timeout;
            wait(pg->group->allreduce(flat, o), timeout);
        });
        if (op == LT_REDUCE_AVG) flat[0].div_(static_cast<double>(pg->size));
        unflatten(flat[0], ts, b);
    }
}

// As LT_BODY, with a communication failure's own status (timeout or peer failure).
template <class Body>
lt_status guarded(Body&& body) noexcept {
    try {
        body();
        return LT_OK;
    } catch (const CommError& e) {
        lt::set_error(e.what());
        return e.status;
    } catch (...) {
        return lt::translate_current_exception();
    }
}

}  // namespace

#define LT_DIST_BODY(...) return guarded([&] { __VA_ARGS__; })

extern "C" {

lt_status lt_process_group_new(const char* master_addr, int32_t master_port, int32_t world_size,
                               int32_t rank, int64_t timeout_ms, const char* local_addr,
                               const char* interface_name, lt_process_group** out) {
    return guarded([&] {
        lt::need(out, "out");
        lt::need(master_addr, "master_addr");
        if (master_port < 1 || master_port > 65535)
            throw std::invalid_argument("master_port must be in 1..65535, got " + std::to_string(master_port));
        if (world_size < 1) throw std::invalid_argument("world_size must be >= 1, got " + std::to_string(world_size));
        if (rank < 0 || rank >= world_size)
            throw std::invalid_argument("rank must be in 0.." + std::to_string(world_size - 1) + ", got " +
                                        std::to_string(rank));
        if (timeout_ms < 1) throw std::invalid_argument("timeout_ms must be >= 1, got " + std::to_string(timeout_ms));
        const std::chrono::milliseconds timeout(timeout_ms);
        auto pg = std::make_unique<lt_process_group>();
        pg->rank = rank;
        pg->size = world_size;
        pg->timeout = timeout;
        // One deadline for the whole rendezvous: each phase gets what is left of it, then the
        // store and the group get the whole timeout back for the collectives.
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        const auto left = [&](const char* phase) {
            const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (ms.count() <= 0)
                throw CommError(LT_ERR_TIMEOUT, std::string(phase) + ": the rendezvous timed out after " +
                                                    std::to_string(timeout_ms) + " ms");
            return ms;
        };
        communicate("rendezvous", [&] {
            std::string why;
            if (rank != 0 && !lt::net::wait_for_listener(master_addr, static_cast<uint16_t>(master_port), deadline, why))
                throw CommError(LT_ERR_TIMEOUT, "rendezvous: no store of rank 0 accepted a connection at " +
                                                    std::string(master_addr) + ":" + std::to_string(master_port) +
                                                    " within " + std::to_string(timeout_ms) + " ms (" + why + ")");
            auto tcp = c10::make_intrusive<c10d::TCPStore>(
                std::string(master_addr),
                compat::store_options(static_cast<uint16_t>(master_port), rank == 0,
                                      static_cast<size_t>(world_size), left("rendezvous")));
            pg->store = c10::make_intrusive<c10d::PrefixStore>("lora4j/", tcp);
        });
        communicate("process group", [&] {
            pg->store->setTimeout(left("process group"));  // Gloo reads the others' addresses through it
            auto options = compat::Group::Options::create(left("process group"));
            if (interface_name != nullptr && interface_name[0] != '\0')
                options->devices.push_back(compat::Group::createDeviceForInterface(interface_name));
            else if (local_addr != nullptr && local_addr[0] != '\0')
                options->devices.push_back(compat::Group::createDeviceForHostname(local_addr));
            else
                options->devices.push_back(compat::Group::createDefaultDevice());
            options->threads = 1;  // one collective at a time: the callers serialise them anyway
            pg->group = c10::make_intrusive<compat::Group>(pg->store, rank, world_size, options);
        });
        pg->store->setTimeout(timeout);
        pg->group->set_timeout(timeout);
        *out = pg.release();
    });
}

lt_status lt_process_group_free(lt_process_group* pg) {
    LT_BODY({
        if (pg != nullptr && pg->broken.load() && pg->group) pg->group->close_connections();
        delete pg;
    });
}

int32_t lt_process_group_rank(const lt_process_group* pg) { return pg == nullptr ? -1 : pg->rank; }

int32_t lt_process_group_size(const lt_process_group* pg) { return pg == nullptr ? -1 : pg->size; }

lt_status lt_process_group_all_reduce(lt_process_group* pg, const lt_tensor* const* ts, int64_t count,
                                      int32_t op, int64_t timeout_ms) {
    LT_DIST_BODY({
        const auto timeout = timeout_of(lt::need(pg, "pg"), timeout_ms);
        checked_collective(
            pg, "all_reduce", timeout, kAllReduce, op,
            [&] {
                auto v = tensors(ts, count, "tensors");
                check_reduction(v, op);
                return v;
            },
            [&](std::vector<at::Tensor>& v) { reduce_buckets(pg, v, op, timeout); });
    });
}

lt_status lt_process_group_all_reduce_grads(lt_process_group* pg, const lt_tensor* const* params,
                                            int64_t count, int32_t op, int64_t timeout_ms) {
    LT_DIST_BODY({
        const auto timeout = timeout_of(lt::need(pg, "pg"), timeout_ms);
        std::vector<at::Tensor> ps;
        std::vector<bool> zeros;  // the parameters without a gradient: given the reduced zeros afterwards
        checked_collective(
            pg, "all_reduce", timeout, kAllReduce, op,
            [&] {
                ps = tensors(params, count, "params");
                std::vector<at::Tensor> grads;
                grads.reserve(ps.size());
                lt::GradLock lock(ps);  // the gradients taken whole, even beside a backward on another thread
                for (size_t i = 0; i < ps.size(); ++i) {
                    const at::Tensor& p = ps[i];
                    if (!p.requires_grad())
                        throw std::invalid_argument("params[" + std::to_string(i) + "] does not require grad");
                    // A parameter this rank did not use contributes zeros; every rank then holds the
                    // same averaged gradient, so optimizers stay in step.
                    zeros.push_back(!p.grad().defined());
                    if (zeros.back()) {
                        grads.push_back(at::zeros_like(p));
                        continue;
                    }
                    if (p.grad().layout() != at::kStrided)
                        throw std::invalid_argument("params[" + std::to_string(i) + "] has a sparse gradient");
                    grads.push_back(p.grad());
                }
                check_reduction(grads, op);
                return grads;
            },
            [&](std::vector<at::Tensor>& grads) {
                reduce_buckets(pg, grads, op, timeout);
                lt::GradLock lock(ps);
                for (size_t i = 0; i < ps.size(); ++i)
                    if (zeros[i]) ps[i].mutable_grad() = grads[i];
            });
    });
}

lt_status lt_process_group_broadcast(lt_process_group* pg, const lt_tensor* const* ts, int64_t count,
                                     int32_t root, int64_t timeout_ms) {
    LT_DIST_BODY({
        const auto timeout = timeout_of(lt::need(pg, "pg"), timeout_ms);
        checked_collective(
            pg, "broadcast", timeout, kBroadcast, root,
            [&] {
                if (root < 0 || root >= pg->size)
                    throw std::invalid_argument("root must be in 0.." + std::to_string(pg->size - 1) + ", got " +
                                                std::to_string(root));
                return tensors(ts, count, "tensors");
            },
            [&](std::vector<at::Tensor>& v) {
                for (const auto& b : buckets(v)) {
                    std::vector<at::Tensor> flat{flatten(v, b)};
                    collective(pg, "broadcast", [&] {
                        c10d::BroadcastOptions o;
                        o.rootRank = root;
                        o.timeout = timeout;
                        wait(pg->group->broadcast(flat, o), timeout);
                    });
                    if (pg->rank != root) unflatten(flat[0], v, b);
                }
            });
    });
}

lt_status lt_process_group_barrier(lt_process_group* pg, int64_t timeout_ms) {
    LT_DIST_BODY({
        const auto timeout = timeout_of(lt::need(pg, "pg"), timeout_ms);
        // The fingerprint's all-reduce is the barrier: it completes once every rank has called.
        checked_collective(
            pg, "barrier", timeout, kBarrier, 0, [] { return std::vector<at::Tensor>{}; },
            [](std::vector<at::Tensor>&) {});
    });
}

}  // extern "C"
