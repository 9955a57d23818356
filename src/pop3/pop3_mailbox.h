/* The POP3 view of a Maildir: messages, unique ids, sizes, wire form. Pure. */
#ifndef PETREL_POP3_MAILBOX_H
#define PETREL_POP3_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

/* RFC 1939 7 (UIDL): 1 to 70 characters in 0x21..0x7E. */
#define POP3_UIDL_MAX 70

/* One message of the snapshot taken at login. */
struct pop3_msg {
	char *name;    /* file name in new/ or cur/ (malloc'd, owned) */
	uint64_t size; /* octets as sent: CRLF line ends, before stuffing */
	unsigned in_cur : 1;  /* in cur/ (else new/) */
	unsigned deleted : 1; /* marked by DELE; undone by RSET */
	char uidl[POP3_UIDL_MAX + 1];
};

/* Length of a Maildir file name's base: up to the ':' of its info. */
size_t pop3_mailbox_base_len(const char *name);

/*
 * The size with CRLF line ends that delivery wrote into the name as
 * ",W=<n>" (delivery/local.c; Dovecot writes it too). Returns 1 with
 * *size_r set, or 0 when the base name carries none.
 */
int pop3_mailbox_name_wsize(const char *name, uint64_t *size_r);

/*
 * The unique id of a message (RFC 1939 7): its Maildir base name, which
 * never changes while the file lives, whatever flags are added. A base
 * name that is too long or holds bytes outside 0x21..0x7E is replaced by
 * "H" and 32 hex digits of its BLAKE2b hash, stable all the same.
 * out has POP3_UIDL_MAX + 1 bytes.
 */
void pop3_mailbox_uidl(const char *name, char *out);

/*
 * Sorts messages in delivery order: by the leading decimal seconds of the
 * name (Maildir names start with the delivery time), then by name.
 */
void pop3_mailbox_sort(struct pop3_msg *msgs, size_t n);

/*
 * The name of a message marked seen (Maildir "S" flag): "base:2,<flags>"
 * with S added in ASCII order. Returns 1 with out filled (size bytes), 0
 * when the name already has S (out is a copy), -1 when it does not fit.
 */
int pop3_mailbox_seen_name(const char *name, char *out, size_t size);

/*
 * Conversion of a stored message (LF or CRLF line ends) into its POP3
 * wire form (RFC 1939 3): every line ends with CRLF, a line starting with
 * '.' gets one more '.', and TOP may stop after the header and n lines of
 * the body. Fed in chunks of any size.
 */
struct pop3_conv {
	int stuff;	    /* add the '.' of byte-stuffing and the end line */
	int64_t body_lines; /* lines of body still to send; -1: all */
	int bol;	    /* at the start of a line */
	int cr;		    /* the last byte was CR */
	int line_empty;	    /* nothing but CR so far on this line */
	int in_body;	    /* past the blank line after the header */
	int done;	    /* TOP has sent all it should */
};

/* stuff: 1 for the wire, 0 to count a message's size. top_lines: the
 * body lines of TOP, or -1 for the whole message. */
void pop3_conv_init(struct pop3_conv *c, int stuff, int64_t top_lines);
/*
 * Converts len bytes of in into out, which must hold 2 * len bytes.
 * Returns the bytes written. Once c->done, input is ignored.
 */
size_t pop3_conv_feed(struct pop3_conv *c, const char *in, size_t len,
		      char *out);
/*
 * The end of the message into out (5 bytes at most): CRLF when the last
 * line had no line end, then ".\r\n" when stuffing. Returns the bytes.
 */
size_t pop3_conv_finish(struct pop3_conv *c, char *out);

#endif
