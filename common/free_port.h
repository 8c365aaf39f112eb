// A free loopback TCP port for tests and benchmarks that start daemons on ephemeral ports.
#pragma once

namespace scion {

// A port on 127.0.0.1 that was free a moment ago (the kernel picks it for a bind to port 0, then
// the socket is closed). Another process may take it before the caller binds: good enough for
// tests on one machine, not for production. Returns 0 when no socket could be bound.
int FreeLoopbackPort();

}  // namespace scion
