/*
 * c2s_tcp.c - the plain TCP transport: read(2)/write(2) on the socket.
 */
#include <errno.h>
#include <ev.h>
#include <unistd.h>

#include "c2s_transport.h"
#include "kn_err.h"

static ssize_t tcp_read(void *state, int fd, void *buf, size_t len, int *want)
{
    (void)state;
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = EV_READ;
            return -KN_EAGAIN;
        }
        return -KN_EIO;
    }
}

static ssize_t tcp_write(void *state, int fd, const void *buf, size_t len,
                         int *want)
{
    (void)state;
    for (;;) {
        ssize_t n = write(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = EV_WRITE;
            return -KN_EAGAIN;
        }
        return -KN_EIO;
    }
}

static void tcp_free(void **state)
{
    *state = NULL;
}

const c2s_transport_t c2s_transport_tcp = {"tcp", tcp_read, tcp_write, NULL,
                                           tcp_free};
