/* Temporary folders of the unit tests. */
#ifndef PETREL_UNIT_TMP_H
#define PETREL_UNIT_TMP_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int unit_rm_entry(const char *path, const struct stat *st, int flag,
			 struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes dir and all below it (symbolic links are not followed). */
static inline void unit_rmtree(const char *dir)
{
	nftw(dir, unit_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
