/*
 * The message layer between petreld's processes (docs/architecture.md,
 * "The message layer"): one message per packet of an AF_UNIX
 * SOCK_SEQPACKET socketpair, with at most one descriptor passed along
 * (SCM_RIGHTS), and payloads made of typed, length-prefixed records.
 * Every decoder here is strict: a message that is short, long, carries an
 * unexpected descriptor or a record that does not match is refused, and
 * the receiver drops the peer that sent it.
 */
#ifndef PETREL_IPC_H
#define PETREL_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* The largest payload: a message's header section under DATA
 * (SMTP_SPILL_MEMORY, 128 KB) fits with room to spare, and a packet of
 * it fits the default socket buffer (net.core.wmem_default, 208 KB) with
 * no setting raised. Anything larger goes by descriptor. */
#define IPC_PAYLOAD_MAX (192 * 1024)
#define IPC_HEADER_SIZE 16
#define IPC_PACKET_MAX (IPC_HEADER_SIZE + IPC_PAYLOAD_MAX)

/* Header flags. */
#define IPC_F_FD 0x1u /* a descriptor comes with the message */

struct ipc_msg {
	uint32_t type;
	uint32_t peer; /* the request id this message answers, or 0 */
	const unsigned char *data;
	size_t len;
	int fd; /* -1 when none */
};

/* A connected pair for the layer: AF_UNIX, SOCK_SEQPACKET, close-on-exec.
 * Returns 0, or -1 with errno. */
int ipc_socketpair(int sv[2]);

/*
 * Checks and splits a packet of n bytes that arrived with nfds descriptors
 * (0 or 1; the caller closes them on refusal). Fills *m (m->fd = -1, the
 * caller sets it). Returns 0, or -1 when the packet is malformed: shorter
 * than the header, a length that is not the packet's, a payload over
 * IPC_PAYLOAD_MAX, unknown flags, or a descriptor missing or unexpected.
 */
int ipc_parse(const void *pkt, size_t n, int nfds, struct ipc_msg *m);

/* Sends one message on socket sock, with descriptor fd (-1: none).
 * Returns 0, or -1 with errno (EMSGSIZE past IPC_PAYLOAD_MAX; EAGAIN when
 * a non-blocking socket is full: nothing was sent). */
int ipc_send(int sock, uint32_t type, uint32_t peer, const void *data,
	     size_t len, int fd);

/*
 * Receives one message into buf (at least IPC_PACKET_MAX bytes); m->data
 * points into it. A descriptor that came along is in m->fd (close-on-exec).
 * Returns 1, 0 when the peer closed, -1 with errno (EBADMSG: malformed or
 * truncated, any descriptor already closed; EAGAIN: nothing to read).
 */
int ipc_recv(int sock, void *buf, size_t size, struct ipc_msg *m);

/*
 * Payload records: u16 tag, u32 length, then that many bytes. A writer
 * appends them to a buf; a reader takes them in order, each with the tag
 * it expects, and fails on anything else.
 */
int ipc_put_bytes(struct buf *b, uint16_t tag, const void *p, size_t len);
int ipc_put_str(struct buf *b, uint16_t tag, const char *s);
int ipc_put_u64(struct buf *b, uint16_t tag, uint64_t v);

struct ipc_reader {
	const unsigned char *p;
	size_t len;
	size_t pos;
};

void ipc_reader_init(struct ipc_reader *r, const void *data, size_t len);
/* The next record, which must have tag: its bytes (not copied) and
 * length. Returns 0, or -1 (wrong tag, truncated). */
int ipc_get_bytes(struct ipc_reader *r, uint16_t tag, const unsigned char **p,
		  size_t *len);
/* A string record into out (size bytes, NUL-terminated): -1 when it holds
 * a NUL or does not fit. */
int ipc_get_str(struct ipc_reader *r, uint16_t tag, char *out, size_t size);
int ipc_get_u64(struct ipc_reader *r, uint16_t tag, uint64_t *v);
/* 0 when every byte was read, -1 when some are left. */
int ipc_get_end(const struct ipc_reader *r);

#endif
