#include "tcp_wait.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <memory>
#include <system_error>
#include <thread>

namespace lt::net {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(ms, 0, INT_MAX));
}

// One non-blocking connect to a, bounded by the deadline: 0 when accepted, else the errno.
int try_connect(const addrinfo& a, Clock::time_point deadline) {
    const int fd = ::socket(a.ai_family, a.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a.ai_protocol);
    if (fd < 0) return errno;
    int err = ::connect(fd, a.ai_addr, a.ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int n;
        do n = ::poll(&p, 1, remaining_ms(deadline));
        while (n < 0 && errno == EINTR);
        if (n == 1) {
            socklen_t len = sizeof err;
            if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        } else {
            err = n == 0 ? ETIMEDOUT : errno;
        }
    }
    ::close(fd);
    return err;
}

}  // namespace

bool wait_for_listener(const std::string& host, uint16_t port, Clock::time_point deadline, std::string& last_error) {
    const std::string service = std::to_string(port);
    auto pause = std::chrono::milliseconds(10);
    for (;;) {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        addrinfo* found = nullptr;
        if (const int g = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); g != 0) {
            last_error = std::string("cannot resolve ") + host + ": " + ::gai_strerror(g);
        } else {
            std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
            for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
                const int err = try_connect(*a, deadline);
                if (err == 0) return true;
                last_error = std::generic_category().message(err);
            }
        }
        const auto left = deadline - Clock::now();
        if (left <= Clock::duration::zero()) return false;
        std::this_thread::sleep_for(std::min<Clock::duration>(pause, left));
        pause = std::min(pause * 2, std::chrono::milliseconds(200));
    }
}

}  // namespace lt::net
