# psa-arch-tests host target for psaspm: the target's sources, in the variables
# the suite's CMake reads from a target.cmake (modelled on tgt_ff_tfm_an521).
# arch_tests/run.py reads these lists and builds them as the suite's CMake
# would; ${PSA_ROOT_DIR} is the suite's api-tests folder and ${PSA_TARGET_DIR}
# this folder (the target lives outside the suite's tree, which stays unmodified).

# PAL C source files part of the NSPE library: the non-secure side reaches the
# devices through the driver partition's RoT services.
list(APPEND PAL_SRC_C_NSPE
	${PSA_TARGET_DIR}/nspe/pal_driver_ipc_intf.c
	${PSA_TARGET_DIR}/nspe/ns_main.c
	${PSA_ROOT_DIR}/platform/targets/common/nspe/pal_weak.c
)

# PAL C source files part of the driver partition: UART to stdout, NVMEM,
# watchdog bookkeeping, the interrupt line.
list(APPEND PAL_SRC_C_DRIVER_SP
	${PSA_TARGET_DIR}/spe/pal_driver_intf.c
)

# Linked into every partition, with -DPSASPM_ARCH_HEAP_SIZE=<its heap_size>:
# the partition's heap (psaspm's host target only).
list(APPEND PAL_SRC_C_PARTITION_HEAP
	${PSA_TARGET_DIR}/spe/sp_heap.c
)
