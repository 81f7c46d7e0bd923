/* LD_PRELOAD shim: turn every bind() to the wildcard address into a bind to loopback.
 *
 * WHY: Pravega 0.13 standalone hard-codes its controller gRPC listener (forPort: all
 * interfaces) and its REST listener ("0.0.0.0"); no property moves them. Tests and
 * benchmarks must listen on 127.0.0.1 only, so scripts/pravega-server preloads this into
 * the JVM. It covers Java NIO and Netty's native epoll transport alike (both call libc
 * bind). Binds to a specific address are left alone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
        }
    } else if (addr && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 a;
        memcpy(&a, addr, sizeof a);
        if (memcmp(&a.sin6_addr, &in6addr_any, sizeof a.sin6_addr) == 0) {
            /* ::ffff:127.0.0.1 so IPv4 clients on 127.0.0.1 still connect to a dual-stack socket */
            static const unsigned char mapped[16] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff,127,0,0,1};
            memcpy(&a.sin6_addr, mapped, sizeof mapped);
            return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
        }
    }
    return real_bind(fd, addr, len);
}
