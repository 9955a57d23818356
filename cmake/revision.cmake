# Writes OUT, a header defining PETREL_REVISION: the commit the build's
# source is at, "+" when its files differ from it ("unknown" outside git).
# Run at every build; OUT changes only when the revision does.
execute_process(
	COMMAND git -c safe.directory=* -C ${SRC} describe --always --dirty=+ --abbrev=12 --exclude=*
	OUTPUT_VARIABLE rev OUTPUT_STRIP_TRAILING_WHITESPACE
	RESULT_VARIABLE rc ERROR_QUIET)
if(NOT rc EQUAL 0 OR rev STREQUAL "")
	set(rev "unknown")
endif()
set(text "#define PETREL_REVISION \"${rev}\"\n")
if(EXISTS ${OUT})
	file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
	file(WRITE ${OUT} "${text}")
endif()
