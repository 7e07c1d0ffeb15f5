/* SPDX-License-Identifier: MIT */
/* iceoryx through its C binding: not measured yet by this harness. */
#include "perf.h"

static void iox_init(struct mech *m)
{
#if HAVE_IOX
	m->skip = "iceoryx baseline not written yet (package present)";
#else
	m->skip = "libiceoryx-binding-c-dev/iceoryx not installed";
#endif
}

struct mech mech_iox = {
	.name = "iceoryx",
	.caps = C_TPUT | C_ZC | C_RTT_SPIN,
	.init = iox_init,
};
