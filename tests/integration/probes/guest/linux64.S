/* The Linux 64-bit boot protocol's entry: load address + 0x200, long mode on the VMM's
 * identity map, %rsi = the zero page (boot_params). */
    .section .text.head, "ax"
    .code64
    .skip 0x200, 0x90
    .globl startup_64
startup_64:
    mov $stack_top, %rsp
    mov %rsi, %rdi
    mov $2, %esi
    call probe_main
1:  hlt
    jmp 1b

    .section .bss
    .align 16
stack: .skip 16384
stack_top:

    .section .note.GNU-stack, "", @progbits
