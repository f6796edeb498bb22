// Waiting for a TCP listener against a deadline. Internal to the shim (distributed.cpp).
//
// Why: LibTorch's TCPStore client does not keep to the timeout it is given. 1.13 gives up a
// backoff early (after 2 s of 3); 2.x retries a timed-out connect with a fresh timeout (4.6 to
// 8.2 s for 3). Waiting here for rank 0's store to accept, against the rendezvous' own deadline,
// and only then letting TCPStore connect keeps the rendezvous within the caller's timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lt::net {

// Until the deadline, tries every address of host:port (IPv4 and IPv6) with a non-blocking
// connect, pausing 10 ms doubling to 200 ms between rounds; each accepted probe is closed at
// once. True when something accepted; false when the deadline passed first, with why the last
// attempt failed ("Connection refused", a resolver error, ...) in last_error. Never throws for
// network conditions.
bool wait_for_listener(const std::string& host, uint16_t port, std::chrono::steady_clock::time_point deadline,
                       std::string& last_error);

}  // namespace lt::net
