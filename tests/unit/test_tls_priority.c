/* test_tls_priority.c: the server's default GnuTLS priority string and the
 * check of an operator's (--tls-priority, config key tls-priority). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "server/config.h"
#include "server/tls.h"
#include "tap.h"

int main(void)
{
  struct server_config cfg;
  char err[512];
  const char *d = tls_default_priority();
  const char *aes = strstr(d, "+AES-128-GCM"), *chacha = strstr(d, "+CHACHA20-POLY1305");

  ok(tls_priority_check(d, err, sizeof err) == 0, "the default priority string is valid (%s)", d);
  ok(strstr(d, "%SERVER_PRECEDENCE") != NULL, "the default puts the server's order first");
  ok(aes && chacha, "the default allows AES-128-GCM and ChaCha20-Poly1305");
  ok(strstr(d, "+AES-256-GCM") && strstr(d, "+AES-128-CBC"), "... and NORMAL's other ciphers");
  ok(!strstr(d, "PSK"), "the default has no PSK key exchange (added only with a keys file)");
  ok(tls_default_priority() == d, "the choice is the same on every call");

  ok(tls_priority_check("NORMAL:-CIPHER-ALL:+CHACHA20-POLY1305", err, sizeof err) == 0,
     "a valid operator string passes");
  ok(tls_priority_check("NORMAL:+NO-SUCH-CIPHER", err, sizeof err) == -EINVAL, "an unknown cipher fails");
  ok(strstr(err, "'+NO-SUCH-CIPHER'") != NULL, "... and the message names it (%s)", err);

  config_init(&cfg);
  ok(config_set_server_key(&cfg, "tls-priority", "NORMAL:%SERVER_PRECEDENCE", err, sizeof err) == 0
     && cfg.tls.priority && !strcmp(cfg.tls.priority, "NORMAL:%SERVER_PRECEDENCE"),
     "config key tls-priority is stored");
  ok(config_set_server_key(&cfg, "tls-priority", "NORMAL:%BOGUS", err, sizeof err) == -EINVAL,
     "a bad tls-priority is refused by the config parser");
  ok(strstr(err, "tls-priority") && strstr(err, "%BOGUS"), "... naming the key and the bad part (%s)", err);
  ok(!strcmp(cfg.tls.priority, "NORMAL:%SERVER_PRECEDENCE"), "... and the value before it is kept");
  config_free(&cfg);
  return tap_done();
}
