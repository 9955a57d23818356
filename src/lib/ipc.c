/*
 * ipc: the message layer between petreld's processes (ipc.h). Framing:
 * a 16-byte header (u32 type, u32 payload length, u32 peer, u32 flags,
 * little-endian), then the payload, in one SOCK_SEQPACKET packet, so no
 * receiver ever looks for boundaries in a stream. Modelled on OpenSMTPD's
 * imsg, smaller.
 */
#include "lib/ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static void ipc_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t ipc_rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

int ipc_socketpair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

int ipc_parse(const void *pkt, size_t n, int nfds, struct ipc_msg *m)
{
	const unsigned char *p = pkt;
	uint32_t len, flags;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (n < IPC_HEADER_SIZE || nfds < 0 || nfds > 1)
		return -1;
	len = ipc_rd32(p + 4);
	flags = ipc_rd32(p + 12);
	if (len > IPC_PAYLOAD_MAX || (size_t)len != n - IPC_HEADER_SIZE)
		return -1;
	if ((flags & ~IPC_F_FD) != 0)
		return -1;
	if (((flags & IPC_F_FD) != 0) != (nfds == 1))
		return -1;
	m->type = ipc_rd32(p);
	m->peer = ipc_rd32(p + 8);
	m->data = p + IPC_HEADER_SIZE;
	m->len = len;
	return 0;
}

int ipc_send(int sock, uint32_t type, uint32_t peer, const void *data,
	     size_t len, int fd)
{
	unsigned char hdr[IPC_HEADER_SIZE];
	struct iovec iov[2];
	struct msghdr mh;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	ssize_t w;

	if (len > IPC_PAYLOAD_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	ipc_le32(hdr, type);
	ipc_le32(hdr + 4, (uint32_t)len);
	ipc_le32(hdr + 8, peer);
	ipc_le32(hdr + 12, fd >= 0 ? IPC_F_FD : 0);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)data;
	iov[1].iov_len = len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = len > 0 ? 2 : 1;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		w = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -1;
	/* A SOCK_SEQPACKET send is all or nothing. */
	if ((size_t)w != sizeof(hdr) + len) {
		errno = EIO;
		return -1;
	}
	return 0;
}

int ipc_recv(int sock, void *buf, size_t size, struct ipc_msg *m)
{
	struct iovec iov = {.iov_base = buf, .iov_len = size};
	struct msghdr mh;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	int fds[4], nfds = 0;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	     c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (nfds < 4)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	if (n == 0 && nfds == 0)
		return 0;
	/* A packet cut to the buffer, or descriptors cut off, is refused
	 * whole: never half a message. */
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
	    ipc_parse(buf, (size_t)n, nfds, m) < 0) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		errno = EBADMSG;
		return -1;
	}
	m->fd = nfds == 1 ? fds[0] : -1;
	return 1;
}

/* ---- records ---- */

int ipc_put_bytes(struct buf *b, uint16_t tag, const void *p, size_t len)
{
	unsigned char h[6];

	if (len > IPC_PAYLOAD_MAX)
		return -1;
	h[0] = (unsigned char)tag;
	h[1] = (unsigned char)(tag >> 8);
	ipc_le32(h + 2, (uint32_t)len);
	if (buf_append(b, h, sizeof(h)) < 0)
		return -1;
	return len > 0 ? buf_append(b, p, len) : 0;
}

int ipc_put_str(struct buf *b, uint16_t tag, const char *s)
{
	return ipc_put_bytes(b, tag, s, strlen(s));
}

int ipc_put_u64(struct buf *b, uint16_t tag, uint64_t v)
{
	unsigned char p[8];

	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return ipc_put_bytes(b, tag, p, sizeof(p));
}

void ipc_reader_init(struct ipc_reader *r, const void *data, size_t len)
{
	r->p = data;
	r->len = len;
	r->pos = 0;
}

int ipc_get_bytes(struct ipc_reader *r, uint16_t tag, const unsigned char **p,
		  size_t *len)
{
	uint32_t n;

	if (r->len - r->pos < 6)
		return -1;
	if ((uint16_t)(r->p[r->pos] | r->p[r->pos + 1] << 8) != tag)
		return -1;
	n = ipc_rd32(r->p + r->pos + 2);
	if (n > r->len - r->pos - 6)
		return -1;
	*p = r->p + r->pos + 6;
	*len = n;
	r->pos += 6 + (size_t)n;
	return 0;
}

int ipc_get_str(struct ipc_reader *r, uint16_t tag, char *out, size_t size)
{
	const unsigned char *p;
	size_t n, pos = r->pos;

	if (size == 0 || ipc_get_bytes(r, tag, &p, &n) < 0)
		return -1;
	if (n >= size || memchr(p, '\0', n) != NULL) {
		r->pos = pos;
		return -1;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

int ipc_get_u64(struct ipc_reader *r, uint16_t tag, uint64_t *v)
{
	const unsigned char *p;
	size_t n, pos = r->pos;

	if (ipc_get_bytes(r, tag, &p, &n) < 0)
		return -1;
	if (n != 8) {
		r->pos = pos;
		return -1;
	}
	*v = 0;
	for (int i = 7; i >= 0; i--)
		*v = *v << 8 | p[i];
	return 0;
}

int ipc_get_end(const struct ipc_reader *r)
{
	return r->pos == r->len ? 0 : -1;
}
