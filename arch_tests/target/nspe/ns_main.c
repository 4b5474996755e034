/*
 * psa-arch-tests host target for psaspm: the non-secure program's main(),
 * run by psaspm on the non-secure side at every boot (psaspm.ns_c).  The
 * suite's val_entry() reads the boot state kept in NVMEM and resumes where the
 * last boot stopped; it ends in pal_terminate_simulation(), which returns here.
 */

#include <setjmp.h>
#include <stdint.h>

int32_t val_entry(void);

jmp_buf psaspm_arch_end;

int main(void)
{
    if (setjmp(psaspm_arch_end) == 0)
        val_entry();
    return 0;
}
