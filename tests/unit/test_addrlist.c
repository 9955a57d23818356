/* Unit tests of lib/addrlist: RFC 5322 address lists and RFC 2047 encoded
 * words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/addrlist.h"

#define MAX_ENTRIES 8

#define L64 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"
#define LABEL63                                                                \
	"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk"
#define LABEL62 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij"
#define DOMAIN255 LABEL63 "." LABEL63 "." LABEL63 "." LABEL63
#define DOMAIN256 LABEL63 "." LABEL63 "." LABEL63 "." LABEL62 ".a"
#define OPEN8 "(((((((("
#define CLOSE8 "))))))))"
#define OPEN32 OPEN8 OPEN8 OPEN8 OPEN8
#define CLOSE32 CLOSE8 CLOSE8 CLOSE8 CLOSE8

/* One expected mailbox: addr_format of its address, display, group. */
struct want_entry {
	const char *addr;
	const char *display;
	const char *group;
};

struct parse_case {
	const char *name;
	const char *input;
	size_t len; /* 0: strlen(input) */
	int want;   /* 0 or -1 */
	size_t count;
	struct want_entry e[4];
};

static const struct parse_case parse_cases[] = {
	/* RFC 5322 appendix A.1.1 to A.3. */
	{"A.1.1 From",
	 "John Doe <jdoe@machine.example>",
	 0,
	 0,
	 1,
	 {{"jdoe@machine.example", "John Doe", ""}}},
	{"A.1.1 To",
	 "Mary Smith <mary@example.net>",
	 0,
	 0,
	 1,
	 {{"mary@example.net", "Mary Smith", ""}}},
	{"A.1.2 From",
	 "\"Joe Q. Public\" <john.q.public@example.com>",
	 0,
	 0,
	 1,
	 {{"john.q.public@example.com", "Joe Q. Public", ""}}},
	{"A.1.2 To",
	 "Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
	 0,
	 0,
	 3,
	 {{"mary@x.test", "Mary Smith", ""},
	  {"jdoe@example.org", "", ""},
	  {"one@y.test", "Who?", ""}}},
	{"A.1.2 Cc",
	 "<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" "
	 "<sysservices@example.net>",
	 0,
	 0,
	 2,
	 {{"boss@nil.test", "", ""},
	  {"sysservices@example.net", "Giant; \"Big\" Box", ""}}},
	{"A.1.3 group",
	 "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	 0,
	 0,
	 3,
	 {{"c@a.test", "Ed Jones", "A Group"},
	  {"joe@where.test", "", "A Group"},
	  {"jdoe@one.test", "John", "A Group"}}},
	{"A.1.3 empty group", "Undisclosed recipients:;", 0, 0, 0, {{0}}},
	{"A.2 display with colon",
	 "\"Mary Smith: Personal Account\" <smith@home.example>",
	 0,
	 0,
	 1,
	 {{"smith@home.example", "Mary Smith: Personal Account", ""}}},
	{"A.3 Resent-To",
	 "Jane Brown <j-brown@other.example>",
	 0,
	 0,
	 1,
	 {{"j-brown@other.example", "Jane Brown", ""}}},
	/* A.5: white space, comments, and other oddities. */
	{"A.5 From",
	 "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
	 0,
	 0,
	 1,
	 {{"pete@silly.test", "Pete", ""}}},
	{"A.5 To",
	 "A Group(Some people)\r\n     :Chris Jones "
	 "<c@(Chris's host.)public.example>,\r\n         joe@example.org,\r\n"
	 "  John <jdoe@one.test> (my dear friend); (the end of the group)",
	 0,
	 0,
	 3,
	 {{"c@public.example", "Chris Jones", "A Group"},
	  {"joe@example.org", "", "A Group"},
	  {"jdoe@one.test", "John", "A Group"}}},
	{"A.5 Cc",
	 "(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;",
	 0,
	 0,
	 0,
	 {{0}}},
	/* A.6: obsolete forms. */
	{"A.6.1 From",
	 "Joe Q. Public <john.q.public@example.com>",
	 0,
	 0,
	 1,
	 {{"john.q.public@example.com", "Joe Q. Public", ""}}},
	{"A.6.1 To",
	 "Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example",
	 0,
	 0,
	 2,
	 {{"mary@example.net", "Mary Smith", ""},
	  {"jdoe@test.example", "", ""}}},
	{"A.6.3 From",
	 "John Doe <jdoe@machine(comment).  example>",
	 0,
	 0,
	 1,
	 {{"jdoe@machine.example", "John Doe", ""}}},
	{"A.6.3 To",
	 "Mary Smith\r\n    \r\n     <mary@example.net>",
	 0,
	 0,
	 1,
	 {{"mary@example.net", "Mary Smith", ""}}},

	/* Plain forms. */
	{"bare", "a@b.example", 0, 0, 1, {{"a@b.example", "", ""}}},
	{"bare angle", "<a@b.example>", 0, 0, 1, {{"a@b.example", "", ""}}},
	{"surrounding space",
	 "  \t a@b.example \t ",
	 0,
	 0,
	 1,
	 {{"a@b.example", "", ""}}},
	{"comment names bare",
	 "a@b.example (Alice Liddell)",
	 0,
	 0,
	 1,
	 {{"a@b.example", "Alice Liddell", ""}}},
	{"first comment names bare",
	 "a@b.example ( Alice ) (second)",
	 0,
	 0,
	 1,
	 {{"a@b.example", "Alice", ""}}},
	{"nested comment names bare",
	 "a@b.example (x (y (z)) \\) w)",
	 0,
	 0,
	 1,
	 {{"a@b.example", "x (y (z)) ) w", ""}}},
	{"comment after angle not a name",
	 "<a@b.example> (Alice)",
	 0,
	 0,
	 1,
	 {{"a@b.example", "", ""}}},
	{"domain lower-cased, local kept",
	 "Alice <Alice@B.Example>",
	 0,
	 0,
	 1,
	 {{"Alice@b.example", "Alice", ""}}},
	{"quoted name with spaces kept",
	 "\"  Al  ice \" <a@b.example>",
	 0,
	 0,
	 1,
	 {{"a@b.example", "  Al  ice ", ""}}},
	{"words joined by one space",
	 "Alice \t (x)  Liddell <a@b.example>",
	 0,
	 0,
	 1,
	 {{"a@b.example", "Alice Liddell", ""}}},
	{"quoted next to atom",
	 "\"Al\"ice <a@b.example>",
	 0,
	 0,
	 1,
	 {{"a@b.example", "Alice", ""}}},
	{"empty quoted name",
	 "\"\" <a@b.example>",
	 0,
	 0,
	 1,
	 {{"a@b.example", "", ""}}},
	{"folded quoted name",
	 "\"Al\r\n ice\" <a@b.example>",
	 0,
	 0,
	 1,
	 {{"a@b.example", "Al ice", ""}}},
	{"folded list",
	 "a@b.example,\r\n c@d.example",
	 0,
	 0,
	 2,
	 {{"a@b.example", "", ""}, {"c@d.example", "", ""}}},
	{"no space around commas",
	 "a@b.example,<c@d.example>,E<e@f.example>",
	 0,
	 0,
	 3,
	 {{"a@b.example", "", ""},
	  {"c@d.example", "", ""},
	  {"e@f.example", "E", ""}}},
	{"empty value", "", 0, 0, 0, {{0}}},
	{"only white space", " \t\r\n ", 0, 0, 0, {{0}}},
	{"only commas", " , ,, ", 0, 0, 0, {{0}}},
	{"only a comment", "(nobody)", 0, 0, 0, {{0}}},
	{"leading and trailing commas",
	 ", a@b.example ,",
	 0,
	 0,
	 1,
	 {{"a@b.example", "", ""}}},

	/* Groups. */
	{"group then mailbox",
	 "g: a@x.test, b@y.test; , c@z.test",
	 0,
	 0,
	 3,
	 {{"a@x.test", "", "g"}, {"b@y.test", "", "g"}, {"c@z.test", "", ""}}},
	{"two groups",
	 "one: a@x.test;, \"two\" (2): B <b@y.test>;",
	 0,
	 0,
	 2,
	 {{"a@x.test", "", "one"}, {"b@y.test", "B", "two"}}},
	{"group with empty elements",
	 "g: , a@x.test, ,;",
	 0,
	 0,
	 1,
	 {{"a@x.test", "", "g"}}},
	{"group without ; at the end",
	 "undisclosed-recipients:",
	 0,
	 0,
	 0,
	 {{0}}},
	{"group without ; with member",
	 "g: a@x.test",
	 0,
	 0,
	 1,
	 {{"a@x.test", "", "g"}}},
	{"group name decoded",
	 "=?utf-8?q?Gr=C3=BCn?=: a@x.test;",
	 0,
	 0,
	 1,
	 {{"a@x.test", "", "Gr\xc3\xbcn"}}},
	{"nested group", "a: b: c@d.test;;", 0, -1, 0, {{0}}},
	{"group without a name", ": a@b.test;", 0, -1, 0, {{0}}},
	{"semicolon outside a group", "a@b.test;", 0, -1, 0, {{0}}},
	{"lone semicolon", ";", 0, -1, 0, {{0}}},
	{"group closed twice", "g:;;", 0, -1, 0, {{0}}},
	{"no comma after group", "g:; a@b.test", 0, -1, 0, {{0}}},
	{"group name with @", "a@b: c@d.test;", 0, -1, 0, {{0}}},

	/* Comments. */
	{"comments everywhere",
	 "(a)Al(b)ice(c)<(d)a(e).(f)b(g)@(h)x(i).(j)test(k)>(l)",
	 0,
	 0,
	 1,
	 {{"a.b@x.test", "Al ice", ""}}},
	{"comment depth 32",
	 "a@b.test " OPEN32 "x" CLOSE32,
	 0,
	 0,
	 1,
	 {{"a@b.test",
	   OPEN8 OPEN8 OPEN8 "(((((((x" CLOSE8 CLOSE8 CLOSE8 ")))))))", ""}}},
	{"comment depth 33", "a@b.test (" OPEN32 CLOSE32 ")", 0, -1, 0, {{0}}},
	{"unterminated comment", "a@b.test (x", 0, -1, 0, {{0}}},
	{"unterminated nested comment", "a@b.test (x (y)", 0, -1, 0, {{0}}},
	{"unbalanced )", "a@b.test x)", 0, -1, 0, {{0}}},
	{"comment escaped paren",
	 "a@b.test (\\()",
	 0,
	 0,
	 1,
	 {{"a@b.test", "(", ""}}},
	{"backslash at end of comment", "a@b.test (\\", 0, -1, 0, {{0}}},

	/* Local parts and obsolete local parts. */
	{"quoted local needs quotes",
	 "\"john smith\"@x.test",
	 0,
	 0,
	 1,
	 {{"\"john smith\"@x.test", "", ""}}},
	{"quoted local unneeded",
	 "\"john\"@x.test",
	 0,
	 0,
	 1,
	 {{"john@x.test", "", ""}}},
	{"quoted local escapes",
	 "\"a\\\"b\\\\c\\d\"@x.test",
	 0,
	 0,
	 1,
	 {{"\"a\\\"b\\\\cd\"@x.test", "", ""}}},
	{"quoted words joined",
	 "\"john\".\"smith\"@x.test",
	 0,
	 0,
	 1,
	 {{"john.smith@x.test", "", ""}}},
	{"quoted and atom joined",
	 "\"a b\".c@x.test",
	 0,
	 0,
	 1,
	 {{"\"a b.c\"@x.test", "", ""}}},
	{"CFWS around dots",
	 "john . (x) smith @ x . test",
	 0,
	 0,
	 1,
	 {{"john.smith@x.test", "", ""}}},
	{"folded inside addr-spec",
	 "<john\r\n .smith@x.test>",
	 0,
	 0,
	 1,
	 {{"john.smith@x.test", "", ""}}},
	{"atext local",
	 "a!#$%&'*+-/=?^_`{|}~@x.test",
	 0,
	 0,
	 1,
	 {{"a!#$%&'*+-/=?^_`{|}~@x.test", "", ""}}},
	{"quoted empty local", "\"\"@x.test", 0, -1, 0, {{0}}},
	{"double dot", "a..b@x.test", 0, -1, 0, {{0}}},
	{"leading dot", ".a@x.test", 0, -1, 0, {{0}}},
	{"trailing dot", "a.@x.test", 0, -1, 0, {{0}}},
	{"quoted local 8-bit", "\"j\xc3\xb6rg\"@x.test", 0, -1, 0, {{0}}},
	{"quoted local control", "\"a\x01\"@x.test", 0, -1, 0, {{0}}},
	{"quoted local tab", "\"a\tb\"@x.test", 0, -1, 0, {{0}}},
	{"unterminated quoted local", "\"abc@x.test", 0, -1, 0, {{0}}},
	{"local without domain", "postmaster", 0, -1, 0, {{0}}},
	{"angle without domain", "<postmaster>", 0, -1, 0, {{0}}},
	{"local and @ only", "a@", 0, -1, 0, {{0}}},
	{"domain only", "@x.test", 0, -1, 0, {{0}}},
	{"two ats", "a@b@x.test", 0, -1, 0, {{0}}},
	{"local 64", L64 "@x.test", 0, 0, 1, {{L64 "@x.test", "", ""}}},
	{"local 65", L64 "a@x.test", 0, -1, 0, {{0}}},
	{"local 65 by words", L64 ".a@x.test", 0, -1, 0, {{0}}},
	{"quoted local 62 quoted 64",
	 "\"a " LABEL62 "\"@x.test",
	 0,
	 -1,
	 0,
	 {{0}}},

	/* Domains. */
	{"domain 255", "a@" DOMAIN255, 0, 0, 1, {{"a@" DOMAIN255, "", ""}}},
	{"domain 256", "a@" DOMAIN256, 0, -1, 0, {{0}}},
	{"domain lower-cased",
	 "a@X.Example.TEST",
	 0,
	 0,
	 1,
	 {{"a@x.example.test", "", ""}}},
	{"domain leading hyphen", "a@-x.test", 0, -1, 0, {{0}}},
	{"domain underscore", "a@x_y.test", 0, -1, 0, {{0}}},
	{"domain trailing dot", "a@x.test.", 0, -1, 0, {{0}}},
	{"domain empty label", "a@x..test", 0, -1, 0, {{0}}},
	{"domain quoted", "a@\"x.test\"", 0, -1, 0, {{0}}},
	{"ipv4 literal", "a@[192.0.2.1]", 0, 0, 1, {{"a@[192.0.2.1]", "", ""}}},
	{"ipv6 literal normalized",
	 "<a@[IPv6:2001:DB8:0::1]>",
	 0,
	 0,
	 1,
	 {{"a@[IPv6:2001:db8::1]", "", ""}}},
	{"literal with space by the brackets",
	 "a@[ 192.0.2.1\r\n ]",
	 0,
	 0,
	 1,
	 {{"a@[192.0.2.1]", "", ""}}},
	{"literal with inner space", "a@[192.0. 2.1]", 0, -1, 0, {{0}}},
	{"general literal", "a@[tag:foo]", 0, -1, 0, {{0}}},
	{"literal quoted-pair", "a@[\\192.0.2.1]", 0, -1, 0, {{0}}},
	{"literal unterminated", "a@[192.0.2.1", 0, -1, 0, {{0}}},
	{"literal nested", "a@[[192.0.2.1]]", 0, -1, 0, {{0}}},
	{"literal then dot", "a@[192.0.2.1].test", 0, -1, 0, {{0}}},
	{"literal 8-bit", "a@[192.0.2.1\xc3\xa9]", 0, -1, 0, {{0}}},
	{"lone ]", "a@b.test]", 0, -1, 0, {{0}}},

	/* Routes (4.4 obs-angle-addr). */
	{"route two hops",
	 "<@a.test,@b.test:x@y.test>",
	 0,
	 0,
	 1,
	 {{"x@y.test", "", ""}}},
	{"route with CFWS and empty hops",
	 "Z < , @a.test (c), ,@ b.test : x@y.test>",
	 0,
	 0,
	 1,
	 {{"x@y.test", "Z", ""}}},
	{"route literal",
	 "<@[192.0.2.1]:x@y.test>",
	 0,
	 0,
	 1,
	 {{"x@y.test", "", ""}}},
	{"route without domain", "<:x@y.test>", 0, -1, 0, {{0}}},
	{"route commas only", "<,:x@y.test>", 0, -1, 0, {{0}}},
	{"route bad domain", "<@a..test:x@y.test>", 0, -1, 0, {{0}}},
	{"route without colon", "<@a.test x@y.test>", 0, -1, 0, {{0}}},
	{"route hops without comma",
	 "<@a.test@b.test:x@y.test>",
	 0,
	 -1,
	 0,
	 {{0}}},
	{"route then nothing", "<@a.test:>", 0, -1, 0, {{0}}},

	/* Structure errors. */
	{"null address", "<>", 0, -1, 0, {{0}}},
	{"unterminated angle", "<a@b.test", 0, -1, 0, {{0}}},
	{"unbalanced >", "a@b.test>", 0, -1, 0, {{0}}},
	{"junk after angle", "Name <a@b.test> junk", 0, -1, 0, {{0}}},
	{"two angles", "<a@b.test> <c@d.test>", 0, -1, 0, {{0}}},
	{"nested angles", "<a@b.test <c@d.test>>", 0, -1, 0, {{0}}},
	{"two bare", "a@b.test c@d.test", 0, -1, 0, {{0}}},
	{"comma in name", "Smith, John <js@x.test>", 0, -1, 0, {{0}}},
	{"dot first in name", ".John <js@x.test>", 0, -1, 0, {{0}}},
	{"lone backslash", "a\\b@x.test", 0, -1, 0, {{0}}},
	{"unterminated quoted name", "\"John <js@x.test>", 0, -1, 0, {{0}}},
	{"backslash ends quoted", "\"John\\", 0, -1, 0, {{0}}},

	/* Bytes: 8-bit, controls, NUL, line ends. */
	/* RFC 6532 3.2: UTF-8 in atoms, so in display names; never in
	 * an address (addr.c refuses it there). */
	{"8-bit in atom name",
	 "J\xc3\xb6rg M\xc3\xbcller <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "J\xc3\xb6rg M\xc3\xbcller", ""}}},
	{"Latin-1 byte in atom name",
	 "J\xf6rg <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "J?rg", ""}}},
	{"8-bit in domain", "j@x\xc3\xa9.test", 0, -1, 0, {{0}}},
	{"8-bit in local part", "j\xc3\xb6rg@x.test", 0, -1, 0, {{0}}},
	{"8-bit local part in brackets",
	 "J <j\xc3\xb6rg@x.test>",
	 0,
	 -1,
	 0,
	 {{0}}},
	{"8-bit UTF-8 in quoted name",
	 "\"J\xc3\xb6rg\" <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "J\xc3\xb6rg", ""}}},
	{"Latin-1 byte in quoted name",
	 "\"J\xf6rg\" <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "J?rg", ""}}},
	{"overlong UTF-8 in quoted name",
	 "\"a\xc0\xafz\" <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "a??z", ""}}},
	{"truncated UTF-8 in quoted name",
	 "\"a\xe2\x82\" <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "a?", ""}}},
	{"8-bit in comment",
	 "j@x.test (J\xc3\xb6rg)",
	 0,
	 0,
	 1,
	 {{"j@x.test", "J\xc3\xb6rg", ""}}},
	{"control in quoted name",
	 "\"a\x01\x7f b\" <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "a?? b", ""}}},
	{"C1 control in quoted name",
	 "\"a\xc2\x85\" <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "a?", ""}}},
	{"control outside quotes", "a\x01 <j@x.test>", 0, -1, 0, {{0}}},
	{"DEL outside quotes", "j@x.test\x7f", 0, -1, 0, {{0}}},
	{"NUL after address", "a@b.test\0, c@d.test", 19, -1, 0, {{0}}},
	{"NUL in domain", "a@b.test\0.evil.test", 19, -1, 0, {{0}}},
	{"NUL in quoted name", "\"a\0b\" <j@x.test>", 16, -1, 0, {{0}}},
	{"NUL in comment", "j@x.test (a\0b)", 14, -1, 0, {{0}}},
	{"NUL quoted-pair", "\"a\\\0b\" <j@x.test>", 17, -1, 0, {{0}}},
	{"CRLF without fold", "a@b.test\r\n, c@d.test", 0, -1, 0, {{0}}},
	{"CRLF at end", "a@b.test\r\n", 0, -1, 0, {{0}}},
	{"bare LF fold", "a@b.test,\n c@d.test", 0, -1, 0, {{0}}},
	{"bare CR", "a@b.test\r c@d.test", 0, -1, 0, {{0}}},
	{"CR in quoted name", "\"a\rb\" <j@x.test>", 0, -1, 0, {{0}}},
	{"LF in comment", "j@x.test (a\nb)", 0, -1, 0, {{0}}},
	{"escaped CR", "\"a\\\r\n b\" <j@x.test>", 0, -1, 0, {{0}}},
	{"header injection", "a@b.test\r\nBcc: victim@x.test", 0, -1, 0, {{0}}},

	/* Encoded words in display names. */
	{"B UTF-8",
	 "=?UTF-8?B?QW5kcsOp?= <a@x.test>",
	 0,
	 0,
	 1,
	 {{"a@x.test", "Andr\xc3\xa9", ""}}},
	{"Q UTF-8 with underscore",
	 "=?utf-8?q?Andr=C3=A9_D?= <a@x.test>",
	 0,
	 0,
	 1,
	 {{"a@x.test", "Andr\xc3\xa9 D", ""}}},
	{"Q Latin-1",
	 "=?iso-8859-1?q?J=F6rg?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "J\xc3\xb6rg", ""}}},
	{"B Latin-1",
	 "=?ISO-8859-1?B?SvZyZyBN/GxsZXI=?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "J\xc3\xb6rg M\xc3\xbcller", ""}}},
	{"windows-1252 euro",
	 "=?windows-1252?q?=80uro?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "\xe2\x82\xacuro", ""}}},
	{"Latin-1 C1 control",
	 "=?iso-8859-1?q?a=80?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "a?", ""}}},
	{"adjacent words joined",
	 "=?utf-8?q?Andr?= =?utf-8?q?=C3=A9?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "Andr\xc3\xa9", ""}}},
	{"adjacent folded words joined",
	 "=?utf-8?b?5pel?=\r\n =?utf-8?b?5pys6Kqe?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", ""}}},
	{"split character joined",
	 "=?utf-8?q?=C3?= =?utf-8?q?=A9?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "\xc3\xa9", ""}}},
	{"glued words",
	 "=?utf-8?q?a?==?iso-8859-1?q?=E9?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "a\xc3\xa9", ""}}},
	{"word then atom spaced",
	 "=?utf-8?q?a?= b =?utf-8?q?c?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "a b c", ""}}},
	{"comment keeps words apart",
	 "=?utf-8?q?a?= (x) =?utf-8?q?b?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "a b", ""}}},
	{"word next to quoted",
	 "\"Dr.\" =?utf-8?q?Who?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "Dr. Who", ""}}},
	{"word inside quotes not decoded",
	 "\"=?utf-8?q?Andr=C3=A9?=\" <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "=?utf-8?q?Andr=C3=A9?=", ""}}},
	{"unknown charset kept",
	 "=?koi8-r?b?8NLJ18XU?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "=?koi8-r?b?8NLJ18XU?=", ""}}},
	{"unknown charset keeps space",
	 "=?koi8-r?q?a?= =?utf-8?q?b?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "=?koi8-r?q?a?= b", ""}}},
	{"bad base64 kept",
	 "=?utf-8?b?Q!==?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "=?utf-8?b?Q!==?=", ""}}},
	{"bad Q escape kept",
	 "=?utf-8?q?a=ZZ?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "=?utf-8?q?a=ZZ?=", ""}}},
	{"unknown encoding kept",
	 "=?utf-8?x?a?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "=?utf-8?x?a?=", ""}}},
	{"part of an atom not decoded",
	 "x=?utf-8?q?a?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "x=?utf-8?q?a?=", ""}}},
	{"decoded control",
	 "=?utf-8?q?a=0D=0Ab=00?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "a??b?", ""}}},
	{"decoded invalid UTF-8",
	 "=?utf-8?q?a=FFb?= <j@x.test>",
	 0,
	 0,
	 1,
	 {{"j@x.test", "a?b", ""}}},
	{"word in addr-spec not decoded",
	 "=?utf-8?q?x?=@x.test",
	 0,
	 0,
	 1,
	 {{"=?utf-8?q?x?=@x.test", "", ""}}},
	{"word in comment name decoded",
	 "a@x.test (=?utf-8?q?Andr=C3=A9?= =?utf-8?q?_D?=)",
	 0,
	 0,
	 1,
	 {{"a@x.test", "Andr\xc3\xa9 D", ""}}},

	/* From-spoofing tricks: only the real address comes out. */
	{"quoted name looks like address",
	 "\"boss@company.test\" <spammer@evil.test>",
	 0,
	 0,
	 1,
	 {{"spammer@evil.test", "boss@company.test", ""}}},
	{"unquoted name looks like address",
	 "boss@company.test <spammer@evil.test>",
	 0,
	 -1,
	 0,
	 {{0}}},
	{"encoded name looks like address",
	 "=?utf-8?q?boss=40company=2Etest?= <spammer@evil.test>",
	 0,
	 0,
	 1,
	 {{"spammer@evil.test", "boss@company.test", ""}}},
	{"encoded word split by a dot is not one",
	 "=?utf-8?q?boss=40company.test?= <spammer@evil.test>",
	 0,
	 0,
	 1,
	 {{"spammer@evil.test", "=?utf-8?q?boss=40company.test?=", ""}}},
	{"encoded word with raw @",
	 "=?utf-8?q?boss@company.test?= <spammer@evil.test>",
	 0,
	 -1,
	 0,
	 {{0}}},
	{"comment holds an address",
	 "spammer@evil.test (<boss@company.test>)",
	 0,
	 0,
	 1,
	 {{"spammer@evil.test", "<boss@company.test>", ""}}},
	{"comment in angle holds an address",
	 "<spammer@evil.test (boss@company.test)>",
	 0,
	 0,
	 1,
	 {{"spammer@evil.test", "", ""}}},
	{"comment hides the local part's domain",
	 "boss(@company.test)@evil.test",
	 0,
	 0,
	 1,
	 {{"boss@evil.test", "", ""}}},
	{"quoted local holds an address",
	 "\"boss@company.test\"@evil.test",
	 0,
	 0,
	 1,
	 {{"\"boss@company.test\"@evil.test", "", ""}}},
	{"escaped quote in quoted local",
	 "\"boss\\\"@company.test\"@evil.test",
	 0,
	 0,
	 1,
	 {{"\"boss\\\"@company.test\"@evil.test", "", ""}}},
	{"angle then domain", "<boss@company.test>@evil.test", 0, -1, 0, {{0}}},
	{"route hides the real domain",
	 "<@company.test:spammer@evil.test>",
	 0,
	 0,
	 1,
	 {{"spammer@evil.test", "", ""}}},
	{"group named like a domain",
	 "company.test: spammer@evil.test;",
	 0,
	 0,
	 1,
	 {{"spammer@evil.test", "", "company.test"}}},
	{"second mailbox",
	 "boss@company.test, spammer@evil.test",
	 0,
	 0,
	 2,
	 {{"boss@company.test", "", ""}, {"spammer@evil.test", "", ""}}},
	{"NUL hides a domain",
	 "boss@company.test\0@evil.test",
	 28,
	 -1,
	 0,
	 {{0}}},
	{"quoted gt in name",
	 "\"a>b<c@d.test\" <spammer@evil.test>",
	 0,
	 0,
	 1,
	 {{"spammer@evil.test", "a>b<c@d.test", ""}}},
	{"comment with quote",
	 "spammer@evil.test (\"<boss@company.test>)",
	 0,
	 0,
	 1,
	 {{"spammer@evil.test", "\"<boss@company.test>", ""}}},
	{"quote with paren",
	 "\"(\" <spammer@evil.test> \")\"",
	 0,
	 -1,
	 0,
	 {{0}}},
};

static void check_entries(const struct addrlist_entry *e, size_t count,
			  const struct want_entry *w, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		char text[ADDR_FORMAT_SIZE];

		print_message("  %s: entry %zu\n", name, i);
		assert_true(addr_format(&e[i].addr, text, sizeof(text)) > 0);
		assert_string_equal(text, w[i].addr);
		assert_string_equal(e[i].display, w[i].display);
		assert_string_equal(e[i].group, w[i].group);
	}
}

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]);
	     i++) {
		const struct parse_case *c = &parse_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->input);
		struct addrlist_entry out[MAX_ENTRIES];
		const char *err = NULL;
		size_t count = 99;
		char *copy;
		int rc;

		/* An exact-size copy, so ASan sees a read past the end. */
		copy = malloc(len > 0 ? len : 1);
		assert_non_null(copy);
		memcpy(copy, c->input, len);
		print_message("case %s\n", c->name);
		rc = addrlist_parse(copy, len, out, MAX_ENTRIES, &count, &err);
		free(copy);
		assert_int_equal(rc, c->want);
		if (rc < 0) {
			assert_non_null(err);
			assert_int_equal(count, 0);
			continue;
		}
		assert_int_equal(count, c->count);
		check_entries(out, count, c->e, c->name);
	}
}

struct decode_case {
	const char *name;
	const char *input;
	size_t len; /* 0: strlen(input) */
	const char *want;
};

static const struct decode_case decode_cases[] = {
	{"empty", "", 0, ""},
	{"plain", "Hello, world", 0, "Hello, world"},
	{"white space kept", "  a \t b  ", 0, "  a   b  "},
	{"fold unfolded", "a\r\n b", 0, "a b"},
	{"Q", "=?utf-8?q?caf=C3=A9?=", 0, "caf\xc3\xa9"},
	{"Q lower-case hex", "=?utf-8?q?caf=c3=a9?=", 0, "caf\xc3\xa9"},
	{"B", "=?UTF-8?B?QW5kcsOp?=", 0, "Andr\xc3\xa9"},
	{"charset case", "=?Utf-8?Q?a?=", 0, "a"},
	{"charset utf8", "=?utf8?q?a?=", 0, "a"},
	{"language suffix", "=?utf-8*en?q?a?=", 0, "a"},
	{"prefix text", "Re: =?utf-8?q?caf=C3=A9?= ok", 0,
	 "Re: caf\xc3\xa9 ok"},
	{"adjacent joined", "=?utf-8?q?a?=  =?utf-8?q?b?=", 0, "ab"},
	{"adjacent folded joined", "=?utf-8?q?a?=\r\n\t=?utf-8?q?b?=", 0, "ab"},
	{"mixed charsets joined", "=?utf-8?q?a?= =?iso-8859-1?q?=E9?=", 0,
	 "a\xc3\xa9"},
	{"glued words", "=?utf-8?q?a?==?utf-8?q?b?=", 0, "ab"},
	{"separated by text", "=?utf-8?q?a?= x =?utf-8?q?b?=", 0, "a x b"},
	{"not after text", "x=?utf-8?q?b?=", 0, "x=?utf-8?q?b?="},
	{"not before text", "=?utf-8?q?b?=x", 0, "=?utf-8?q?b?=x"},
	{"in parentheses not decoded", "(=?utf-8?q?b?=)", 0, "(=?utf-8?q?b?=)"},
	{"Q with specials", "=?utf-8?q?a.b(c)\"d\"?=", 0, "a.b(c)\"d\""},
	{"unknown charset", "=?koi8-r?b?8NLJ18XU?=", 0,
	 "=?koi8-r?b?8NLJ18XU?="},
	{"unknown charset keeps space", "=?koi8-r?q?a?= =?utf-8?q?b?=", 0,
	 "=?koi8-r?q?a?= b"},
	{"us-ascii 8-bit", "=?us-ascii?q?a=E9?=", 0, "a?"},
	{"latin1 alias", "=?latin1?q?=E9?=", 0, "\xc3\xa9"},
	{"cp1252 quotes", "=?cp1252?q?=93x=94?=", 0,
	 "\xe2\x80\x9cx\xe2\x80\x9d"},
	{"cp1252 hole", "=?windows-1252?q?=81?=", 0, "?"},
	{"B missing padding", "=?utf-8?b?QQ?=", 0, "A"},
	{"B padded", "=?utf-8?b?QQ==?=", 0, "A"},
	{"B one char", "=?utf-8?b?Q?=", 0, "=?utf-8?b?Q?="},
	{"B short padding", "=?utf-8?b?QQ=?=", 0, "=?utf-8?b?QQ=?="},
	{"B too much padding", "=?utf-8?b?Q===?=", 0, "=?utf-8?b?Q===?="},
	{"B data after padding", "=?utf-8?b?QQ==QQ==?=", 0,
	 "=?utf-8?b?QQ==QQ==?="},
	{"B bad char", "=?utf-8?b?Q-==?=", 0, "=?utf-8?b?Q-==?="},
	{"Q bad escape", "=?utf-8?q?a=4?=", 0, "=?utf-8?q?a=4?="},
	{"Q escape at end", "=?utf-8?q?a=?=", 0, "=?utf-8?q?a=?="},
	{"empty text",
	 "=?utf-8?q?"
	 "?=",
	 0,
	 "=?utf-8?q?"
	 "?="},
	{"empty charset", "=??q?a?=", 0, "=??q?a?="},
	{"no end", "=?utf-8?q?abc", 0, "=?utf-8?q?abc"},
	{"space inside", "=?utf-8?q?a b?=", 0, "=?utf-8?q?a b?="},
	{"encoding too long", "=?utf-8?qq?a?=", 0, "=?utf-8?qq?a?="},
	{"decoded control", "=?utf-8?q?a=09b=0Dc?=", 0, "a b?c"},
	{"decoded NUL", "=?utf-8?b?AA==?=", 0, "?"},
	{"decoded split character", "=?utf-8?q?=E2=82?= =?utf-8?q?=AC?=", 0,
	 "\xe2\x82\xac"},
	{"split character then text", "=?utf-8?q?=E2=82?= x", 0, "? x"},
	{"split character then Latin-1",
	 "=?utf-8?q?=E2?= =?iso-8859-1?q?=E9?=", 0, "?\xc3\xa9"},
	{"raw UTF-8", "J\xc3\xb6rg", 0, "J\xc3\xb6rg"},
	{"raw Latin-1", "J\xf6rg", 0, "J?rg"},
	{"overlong", "\xc0\xaf", 0, "??"},
	{"surrogate", "\xed\xa0\x80", 0, "???"},
	{"above U+10FFFF", "\xf4\x90\x80\x80", 0, "????"},
	{"four-byte", "\xf0\x9f\x98\x80", 0, "\xf0\x9f\x98\x80"},
	{"C1 control", "\xc2\x9b", 0, "?"},
	{"bare CR", "a\rb", 0, "a?b"},
	{"bare LF", "a\nb", 0, "a?b"},
	{"CRLF not a fold", "a\r\nb", 0, "a??b"},
	{"NUL", "a\0b", 3, "a?b"},
};

static void test_decode_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]);
	     i++) {
		const struct decode_case *c = &decode_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->input);
		char out[256];
		char *copy = malloc(len > 0 ? len : 1);
		size_t n;

		assert_non_null(copy);
		memcpy(copy, c->input, len);
		print_message("case %s\n", c->name);
		n = addrlist_decode_words(copy, len, out, sizeof(out));
		free(copy);
		assert_string_equal(out, c->want);
		assert_int_equal(n, strlen(c->want));
	}
}

/* Cut at size - 1, never inside a character, and a prefix of the uncut
 * output; size 0 writes nothing. */
static void test_decode_cut(void **state)
{
	static const char *inputs[] = {
		"=?utf-8?b?5pel5pys6Kqe?= and =?iso-8859-1?q?J=F6rg?= \xc3\xa9",
		"abc \xf0\x9f\x98\x80\xf0\x9f\x98\x80 =?koi8-r?q?x?=",
	};
	(void)state;
	for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
		char full[256];
		size_t flen = addrlist_decode_words(
			inputs[k], strlen(inputs[k]), full, sizeof(full));

		for (size_t size = 1; size <= flen + 1; size++) {
			char *out = malloc(size);
			size_t n;

			assert_non_null(out);
			n = addrlist_decode_words(inputs[k], strlen(inputs[k]),
						  out, size);
			assert_true(n < size);
			assert_int_equal(n, strlen(out));
			assert_memory_equal(out, full, n);
			/* Never inside a character: the next byte of the
			 * full output starts one. */
			if (n < flen)
				assert_true(((unsigned char)full[n] & 0xc0) !=
					    0x80);
			free(out);
		}
	}
	assert_int_equal(addrlist_decode_words("abc", 3, NULL, 0), 0);
}

/* The display name is cut at ADDRLIST_DISPLAY_MAX - 1 bytes, never inside
 * a character; the list still parses. */
static void test_display_cut(void **state)
{
	char in[2048], want[ADDRLIST_DISPLAY_MAX];
	struct addrlist_entry out[1];
	const char *err;
	size_t count, o = 0, w = 0;

	(void)state;
	in[o++] = '"';
	for (int i = 0; i < 300; i++) {
		in[o++] = (char)0xc3;
		in[o++] = (char)0xa9;
		if (w + 2 <= ADDRLIST_DISPLAY_MAX - 1) {
			want[w++] = (char)0xc3;
			want[w++] = (char)0xa9;
		}
	}
	want[w] = '\0';
	memcpy(in + o, "\" <a@x.test>", 12);
	o += 12;
	assert_int_equal(addrlist_parse(in, o, out, 1, &count, &err), 0);
	assert_int_equal(count, 1);
	assert_string_equal(out[0].display, want);
	assert_int_equal(strlen(out[0].display), ADDRLIST_DISPLAY_MAX - 2);

	/* A group name too. */
	o = 0;
	for (int i = 0; i < 600; i++)
		in[o++] = 'g';
	memcpy(in + o, ": a@x.test;", 11);
	o += 11;
	assert_int_equal(addrlist_parse(in, o, out, 1, &count, &err), 0);
	assert_int_equal(strlen(out[0].group), ADDRLIST_DISPLAY_MAX - 1);
}

struct max_case {
	const char *name;
	const char *input;
	size_t max;
	int want;
	size_t count;
};

static const struct max_case max_cases[] = {
	{"empty with max 0", "", 0, 0, 0},
	{"empty group with max 0", "g:;", 0, 0, 0},
	{"one over max 0", "a@b.test", 0, -1, 0},
	{"three with max 3", "a@b.test, c@d.test, e@f.test", 3, 0, 3},
	{"three with max 2", "a@b.test, c@d.test, e@f.test", 2, -1, 0},
	{"group over max", "g: a@b.test, c@d.test;", 1, -1, 0},
	{"empty elements do not count", ",,a@b.test,,,", 1, 0, 1},
};

static void test_max(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(max_cases) / sizeof(max_cases[0]); i++) {
		const struct max_case *c = &max_cases[i];
		struct addrlist_entry *out = NULL;
		const char *err = NULL;
		size_t count = 99;
		int rc;

		print_message("case %s\n", c->name);
		/* Exactly max entries: ASan sees a write past them. */
		if (c->max > 0) {
			out = malloc(c->max * sizeof(*out));
			assert_non_null(out);
		}
		rc = addrlist_parse(c->input, strlen(c->input), out, c->max,
				    &count, &err);
		free(out);
		assert_int_equal(rc, c->want);
		assert_int_equal(count, c->count);
		if (rc < 0)
			assert_non_null(err);
	}
}

static void assert_entries_equal(const struct addrlist_entry *a,
				 const struct addrlist_entry *b, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		assert_string_equal(a[i].addr.local, b[i].addr.local);
		assert_string_equal(a[i].addr.domain, b[i].addr.domain);
		assert_string_equal(a[i].display, b[i].display);
		assert_string_equal(a[i].group, b[i].group);
	}
}

static void parse_exact(const char *s, size_t len, int *rc_r,
			struct addrlist_entry *out, size_t *count_r)
{
	const char *err = NULL;
	char *copy = malloc(len > 0 ? len : 1);

	assert_non_null(copy);
	memcpy(copy, s, len);
	memset(out, 0, MAX_ENTRIES * sizeof(*out));
	*rc_r = addrlist_parse(copy, len, out, MAX_ENTRIES, count_r, &err);
	free(copy);
	if (*rc_r < 0)
		assert_non_null(err);
}

/* Every prefix of a few valid lists: no read past len (exact-size copies
 * under ASan), the outcome does not depend on the bytes after the prefix,
 * and whatever comes out is a valid address. */
static void test_truncated(void **state)
{
	static const char *lists[] = {
		"Pete(A nice \\) chap) <pete(his account)@silly.test(his "
		"host)>",
		"A Group(Some people)\r\n :Chris Jones <c@(Chris's "
		"host.)public.example>,\r\n joe@example.org,\r\n John "
		"<jdoe@one.test> (my dear friend); (the end of the group)",
		"Mary Smith <@node.test,@b.test:mary@example.net>, , jdoe@test "
		" . example, \"a\\\"b\".c@[IPv6:2001:db8::1]",
		"=?utf-8?q?Andr=C3=A9?= =?iso-8859-1?b?SvZyZw==?= "
		"<a@b.test>, x@y.test (=?utf-8?q?X?=), \"q\xc3\xa9\" "
		"<z@[1.2.3.4]>",
	};
	static const char junk[] = ">, <evil@evil.test> ( \" [";
	(void)state;
	for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
		size_t len = strlen(lists[k]);
		int full_rc;
		size_t full_count;
		struct addrlist_entry full[MAX_ENTRIES];

		parse_exact(lists[k], len, &full_rc, full, &full_count);
		assert_int_equal(full_rc, 0);
		for (size_t n = 0; n <= len; n++) {
			struct addrlist_entry a[MAX_ENTRIES], b[MAX_ENTRIES];
			char buf[512];
			size_t ca = 0, cb = 0;
			const char *err;
			int ra, rb;

			parse_exact(lists[k], n, &ra, a, &ca);
			/* The same prefix with other bytes after it. */
			memcpy(buf, lists[k], n);
			memcpy(buf + n, junk, sizeof(junk));
			memset(b, 0, sizeof(b));
			rb = addrlist_parse(buf, n, b, MAX_ENTRIES, &cb, &err);
			assert_int_equal(ra, rb);
			assert_int_equal(ca, cb);
			assert_entries_equal(a, b, ca);
			for (size_t i = 0; ra == 0 && i < ca; i++) {
				char text[ADDR_FORMAT_SIZE];
				struct addr again;

				assert_true(addr_format(&a[i].addr, text,
							sizeof(text)) > 0);
				assert_int_equal(
					addr_parse_mailbox(text, &again, &err),
					0);
				assert_true(addr_equal(&a[i].addr, &again));
			}
			if (n == len) {
				assert_int_equal(ca, full_count);
				assert_entries_equal(a, full, ca);
			}
		}
	}
}

/* Linear time: long inputs of the shapes that make naive parsers
 * backtrack finish at once. */
static void test_long_inputs(void **state)
{
	size_t size = 1 << 20;
	char *in = malloc(size), *out = malloc(size);
	struct addrlist_entry e[1];
	const char *err;
	size_t count;

	(void)state;
	assert_non_null(in);
	assert_non_null(out);

	/* A display name of half a million words. */
	for (size_t i = 0; i + 1 < size; i += 2)
		memcpy(in + i, "a ", 2);
	memcpy(in + size - 12, "<a@b.test>  ", 12);
	assert_int_equal(addrlist_parse(in, size, e, 1, &count, &err), 0);
	assert_int_equal(count, 1);

	/* Comments: many, and deep ones. */
	for (size_t i = 0; i + 1 < size; i += 2)
		memcpy(in + i, "()", 2);
	assert_int_equal(addrlist_parse(in, size, e, 1, &count, &err), 0);
	assert_int_equal(count, 0);
	memset(in, '(', size);
	assert_int_equal(addrlist_parse(in, size, e, 1, &count, &err), -1);

	/* Empty elements and a quoted string that never ends. */
	memset(in, ',', size);
	assert_int_equal(addrlist_parse(in, size, e, 1, &count, &err), 0);
	memset(in, ' ', size);
	in[0] = '"';
	assert_int_equal(addrlist_parse(in, size, e, 1, &count, &err), -1);

	/* Encoded-word openings that never close, and many words. */
	for (size_t i = 0; i + 8 <= size; i += 8)
		memcpy(in + i, "=?a?q?=?", 8);
	(void)addrlist_decode_words(in, size, out, size);
	for (size_t i = 0; i + 8 <= size; i += 8)
		memcpy(in + i, "=?a?q?x ", 8);
	(void)addrlist_decode_words(in, size, out, size);
	for (size_t i = 0; i + 16 <= size; i += 16)
		memcpy(in + i, "=?utf-8?q?ab?=  ", 16);
	/* Joined words, then the white space after the last one. */
	assert_int_equal(addrlist_decode_words(in, size, out, size),
			 2 * (size / 16) + 2);
	free(in);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_decode_table),
		cmocka_unit_test(test_decode_cut),
		cmocka_unit_test(test_display_cut),
		cmocka_unit_test(test_max),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_long_inputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
