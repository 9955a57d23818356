/* Whether the spool has room for a new SMTP transaction. */
#ifndef PETREL_SMTP_SPACE_H
#define PETREL_SMTP_SPACE_H

#include <stdint.h>

/*
 * Whether dir (data_dir) has at least min_mb megabytes free; min_mb <= 0
 * turns the check off. statvfs runs at most once a second (now_ms,
 * monotonic), or at once when min_mb changed; every loop shares the
 * answer. A change between enough and too little space is logged once
 * into the system log. Returns 1 when there is room, 0 when not. When
 * statvfs fails the last answer stands (room at first).
 */
int smtp_space_ok(const char *dir, int64_t min_mb, int64_t now_ms);

#endif
