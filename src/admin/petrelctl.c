/* petreld: placeholder main until the daemon wiring lands. */
#include <stdio.h>
int main(void)
{
	return 0;
}
