/* option.h: the fixed-newstyle handshake's messages, encoded and decoded for
 * both sides ("Newstyle negotiation", "Option types" and "Option reply types"
 * in the NBD spec): the greeting, option and option reply headers, the
 * NBD_REP_INFO payloads and the reply to NBD_OPT_EXPORT_NAME.  The server's
 * handshake state machine (handshake.c) and libshunt's negotiation use these
 * alone.  Pure: fixed-size buffers in and out, no I/O, no allocation. */
#ifndef SHUNT_PROTO_OPTION_H
#define SHUNT_PROTO_OPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sizes of the messages below. */
#define PROTO_GREETING_SIZE 18          /* NBDMAGIC, IHAVEOPT, handshake flags */
#define PROTO_OPT_SIZE 16               /* option header */
#define PROTO_OPT_REPLY_SIZE 20         /* option reply header */
#define PROTO_INFO_EXPORT_SIZE 12       /* NBD_INFO_EXPORT payload, type included */
#define PROTO_INFO_BLOCK_SIZE_SIZE 14   /* NBD_INFO_BLOCK_SIZE payload, type included */
#define PROTO_EXPORT_NAME_REPLY_SHORT 10    /* size and flags (NO_ZEROES) */
#define PROTO_EXPORT_NAME_REPLY_FULL 134    /* ... and 124 zero bytes */

/* The server's greeting with handshake flags gflags (18 bytes). */
void proto_greeting_encode(uint8_t *buf, uint16_t gflags);
/* Decode a greeting: 0 and *gflags, -EPROTO for a wrong magic, or
 * -EPROTONOSUPPORT for an oldstyle server (its second magic is not IHAVEOPT). */
int proto_greeting_decode(const uint8_t *buf, uint16_t *gflags);

/* An option header (16 bytes): len bytes of option data follow. */
void proto_opt_encode(uint8_t *buf, uint32_t option, uint32_t len);
/* Decode an option header: 0, or -EPROTO for a bad magic. */
int proto_opt_decode(const uint8_t *buf, uint32_t *option, uint32_t *len);

/* An option reply header (20 bytes): len bytes of reply data follow. */
void proto_opt_reply_encode(uint8_t *buf, uint32_t option, uint32_t reply, uint32_t len);
/* Decode an option reply header: 0, or -EPROTO for a bad magic or an option
 * that is not want_option (the one the client sent). */
int proto_opt_reply_decode(const uint8_t *buf, uint32_t want_option, uint32_t *reply,
                           uint32_t *len);

/* NBD_INFO_EXPORT: the whole NBD_REP_INFO payload (12 bytes). */
void proto_info_export_encode(uint8_t *buf, uint64_t size, uint16_t eflags);
/* Decode it from an NBD_REP_INFO payload of len bytes: 0, or -EPROTO. */
int proto_info_export_decode(const uint8_t *buf, size_t len, uint64_t *size, uint16_t *eflags);

/* NBD_INFO_BLOCK_SIZE: the whole NBD_REP_INFO payload (14 bytes). */
void proto_info_block_size_encode(uint8_t *buf, uint32_t minimum, uint32_t preferred,
                                  uint32_t maximum);
int proto_info_block_size_decode(const uint8_t *buf, size_t len, uint32_t *minimum,
                                 uint32_t *preferred, uint32_t *maximum);

/* The info type an NBD_REP_INFO payload of len bytes starts with: 0 and *type,
 * or -EPROTO when it is shorter than a type. */
int proto_info_type(const uint8_t *buf, size_t len, uint16_t *type);

/* The reply to NBD_OPT_EXPORT_NAME: size and flags, then (without NO_ZEROES)
 * 124 zero bytes.  Returns the size written (10 or 134). */
size_t proto_export_name_reply_encode(uint8_t *buf, uint64_t size, uint16_t eflags,
                                      bool no_zeroes);
/* Decode its first 10 bytes. */
void proto_export_name_reply_decode(const uint8_t *buf, uint64_t *size, uint16_t *eflags);

/* A readable name for an NBD_REP_* value ("ACK", "ERR_UNSUP", ...). */
const char *proto_rep_name(uint32_t reply);

#endif
