/* tcp_pair.h: a connected pair of TCP sockets on 127.0.0.1, for unit tests
 * that need a real TCP socket (SEND_ZC, MSG_SPLICE_PAGES), not a socketpair. */
#ifndef SHUNT_TESTS_TCP_PAIR_H
#define SHUNT_TESTS_TCP_PAIR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* sv[0]: the connecting end, sv[1]: the accepted end.  0, or -1. */
static inline int tcp_pair(int sv[2])
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t len = sizeof a;
  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0
      || getsockname(l, (struct sockaddr *)&a, &len) < 0)
    return -1;
  sv[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(sv[0], (struct sockaddr *)&a, sizeof a) < 0)
    return -1;
  sv[1] = accept(l, NULL, NULL);
  close(l);
  return sv[1] < 0 ? -1 : 0;
}

#endif
