/* Unit tests of lib/ipc: framing, descriptor passing, strict decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/ipc.h"

static unsigned char rbuf[IPC_PACKET_MAX];

static void pair(int sv[2])
{
	assert_int_equal(ipc_socketpair(sv), 0);
}

/* Open descriptors of this process. */
static int open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

static void test_roundtrip(void **state)
{
	struct buf b;
	struct ipc_msg m;
	struct ipc_reader r;
	char s[64];
	uint64_t v;
	const unsigned char *p;
	size_t n;
	int sv[2];

	(void)state;
	pair(sv);
	buf_init(&b, IPC_PAYLOAD_MAX);
	assert_int_equal(ipc_put_str(&b, 1, "alice@example.test"), 0);
	assert_int_equal(ipc_put_u64(&b, 2, 0x0102030405060708ull), 0);
	assert_int_equal(ipc_put_bytes(&b, 3, "", 0), 0);
	assert_int_equal(ipc_send(sv[0], 7, 42, b.data, b.len, -1), 0);
	assert_int_equal(ipc_recv(sv[1], rbuf, sizeof(rbuf), &m), 1);
	assert_int_equal(m.type, 7);
	assert_int_equal(m.peer, 42);
	assert_int_equal(m.fd, -1);
	ipc_reader_init(&r, m.data, m.len);
	assert_int_equal(ipc_get_str(&r, 1, s, sizeof(s)), 0);
	assert_string_equal(s, "alice@example.test");
	assert_int_equal(ipc_get_u64(&r, 2, &v), 0);
	assert_true(v == 0x0102030405060708ull);
	assert_int_equal(ipc_get_bytes(&r, 3, &p, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ipc_get_end(&r), 0);
	/* An empty payload, and the largest one. */
	assert_int_equal(ipc_send(sv[0], 1, 0, NULL, 0, -1), 0);
	assert_int_equal(ipc_recv(sv[1], rbuf, sizeof(rbuf), &m), 1);
	assert_int_equal(m.len, 0);
	buf_reset(&b);
	for (size_t i = 0; i < IPC_PAYLOAD_MAX; i++)
		assert_int_equal(buf_append(&b, "x", 1), 0);
	assert_int_equal(ipc_send(sv[0], 2, 0, b.data, b.len, -1), 0);
	assert_int_equal(ipc_recv(sv[1], rbuf, sizeof(rbuf), &m), 1);
	assert_int_equal(m.len, IPC_PAYLOAD_MAX);
	errno = 0;
	assert_int_equal(ipc_send(sv[0], 2, 0, b.data, IPC_PAYLOAD_MAX + 1, -1),
			 -1);
	assert_int_equal(errno, EMSGSIZE);
	/* The peer closes: 0. */
	close(sv[0]);
	assert_int_equal(ipc_recv(sv[1], rbuf, sizeof(rbuf), &m), 0);
	close(sv[1]);
	buf_deinit(&b);
}

static void test_descriptor(void **state)
{
	struct ipc_msg m;
	int sv[2], p[2];
	char got[8] = "";

	(void)state;
	pair(sv);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(ipc_send(sv[0], 3, 0, "f", 1, p[1]), 0);
	close(p[1]);
	assert_int_equal(ipc_recv(sv[1], rbuf, sizeof(rbuf), &m), 1);
	assert_true(m.fd >= 0);
	assert_true((fcntl(m.fd, F_GETFD) & FD_CLOEXEC) != 0);
	assert_int_equal(write(m.fd, "hello", 5), 5);
	close(m.fd);
	assert_int_equal(read(p[0], got, sizeof(got) - 1), 5);
	assert_string_equal(got, "hello");
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}

/* Sends a raw packet, with fd when fd >= 0. */
static void send_raw(int sock, const void *pkt, size_t n, int fd)
{
	struct iovec iov = {.iov_base = (void *)(uintptr_t)pkt, .iov_len = n};
	struct msghdr mh;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
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
	assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)n);
}

static void hdr(unsigned char *h, uint32_t type, uint32_t len, uint32_t peer,
		uint32_t flags)
{
	uint32_t v[4] = {type, len, peer, flags};

	for (int k = 0; k < 4; k++)
		for (int i = 0; i < 4; i++)
			h[4 * k + i] = (unsigned char)(v[k] >> (8 * i));
}

/* Every malformed packet is refused, and a descriptor that came with it
 * is closed; a good message after it is read as usual. */
static void test_malformed(void **state)
{
	unsigned char pkt[64];
	struct ipc_msg m;
	int sv[2], before;
	static const struct {
		const char *name;
		uint32_t len, flags;
		size_t size;
		int with_fd;
	} cases[] = {
		{"shorter than the header", 0, 0, 10, 0},
		{"length over the packet", 20, 0, 16 + 4, 0},
		{"length under the packet", 2, 0, 16 + 4, 0},
		{"unknown flag", 0, 0x2, 16, 0},
		{"fd flag without a descriptor", 0, IPC_F_FD, 16, 0},
		{"a descriptor without the flag", 0, 0, 16, 1},
	};

	(void)state;
	pair(sv);
	before = open_fds();
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int p[2] = {-1, -1};

		memset(pkt, 'z', sizeof(pkt));
		hdr(pkt, 9, cases[i].len, 0, cases[i].flags);
		if (cases[i].with_fd)
			assert_int_equal(pipe(p), 0);
		send_raw(sv[0], pkt, cases[i].size, p[1]);
		if (p[0] >= 0) {
			close(p[0]);
			close(p[1]);
		}
		errno = 0;
		if (ipc_recv(sv[1], rbuf, sizeof(rbuf), &m) != -1 ||
		    errno != EBADMSG)
			fail_msg("%s: not refused", cases[i].name);
		assert_int_equal(open_fds(), before);
	}
	/* A packet larger than the receiver's buffer: refused whole. */
	hdr(pkt, 9, 40, 0, 0);
	send_raw(sv[0], pkt, 56, -1);
	errno = 0;
	assert_int_equal(ipc_recv(sv[1], rbuf, 32, &m), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(ipc_send(sv[0], 5, 1, "ok", 2, -1), 0);
	assert_int_equal(ipc_recv(sv[1], rbuf, sizeof(rbuf), &m), 1);
	assert_int_equal(m.type, 5);
	assert_memory_equal(m.data, "ok", 2);
	close(sv[0]);
	close(sv[1]);
}

static void test_records_strict(void **state)
{
	struct buf b;
	struct ipc_reader r;
	char s[8];
	uint64_t v;

	(void)state;
	buf_init(&b, 1024);
	assert_int_equal(ipc_put_str(&b, 1, "abc"), 0);
	assert_int_equal(ipc_put_bytes(&b, 2, "a\0b", 3), 0);
	assert_int_equal(ipc_put_bytes(&b, 3, "1234", 4), 0);
	assert_int_equal(ipc_put_str(&b, 4, "too long for it"), 0);
	ipc_reader_init(&r, b.data, b.len);
	/* The wrong tag: refused, nothing taken. */
	assert_int_equal(ipc_get_str(&r, 2, s, sizeof(s)), -1);
	assert_int_equal(ipc_get_str(&r, 1, s, sizeof(s)), 0);
	assert_string_equal(s, "abc");
	/* A NUL in a string. */
	assert_int_equal(ipc_get_str(&r, 2, s, sizeof(s)), -1);
	assert_int_equal(r.pos, 6 + 3);
	r.pos += 6 + 3;
	/* A u64 of 4 bytes. */
	assert_int_equal(ipc_get_u64(&r, 3, &v), -1);
	r.pos += 6 + 4;
	/* Longer than the caller's room. */
	assert_int_equal(ipc_get_str(&r, 4, s, sizeof(s)), -1);
	assert_int_equal(ipc_get_end(&r), -1);
	/* Truncated: a length past the end. */
	ipc_reader_init(&r, b.data, 6 + 2);
	assert_int_equal(ipc_get_str(&r, 1, s, sizeof(s)), -1);
	ipc_reader_init(&r, b.data, 5);
	assert_int_equal(ipc_get_str(&r, 1, s, sizeof(s)), -1);
	buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_descriptor),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_records_strict),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
