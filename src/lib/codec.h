/* Character values of the transfer encodings (hex of quoted-printable,
 * xtext and %-escapes; base64's alphabet). Pure. */
#ifndef PETREL_CODEC_H
#define PETREL_CODEC_H

/* The value of a hex digit (either case), or -1. */
int codec_hex_value(int c);
/* The value of a base64 character (RFC 4648 4), or -1 ('=' included). */
int codec_base64_value(int c);

#endif
