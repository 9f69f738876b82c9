/* PVH entry (XEN_ELFNOTE_PHYS32_ENTRY): 32-bit protected mode, paging off, %ebx = start info.
 * Switch to long mode on identity-mapped 2 MiB pages (the first GiB) and call probe_main. */
    .section .note.Xen, "a", @note
    .align 4
    .long 4, 4, 18
    .asciz "Xen"
    .long pvh_start

    .section .text.entry, "ax"
    .code32
    .globl pvh_start
pvh_start:
    mov %ebx, %edi
    mov $pd, %edx
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%edx, %ecx, 8)
    movl $0, 4(%edx, %ecx, 8)
    inc %ecx
    cmp $512, %ecx
    jne 1b
    movl $pd + 3, pdpt
    movl $pdpt + 3, pml4
    mov $pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    lgdt gdt_desc
    ljmp $0x08, $long_mode

    .code64
long_mode:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $stack_top, %rsp
    mov %edi, %edi
    mov $1, %esi
    call probe_main
2:  hlt
    jmp 2b

    .section .rodata
    .align 8
gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
gdt_desc:
    .word gdt_desc - gdt - 1
    .long gdt

    .section .bss
    .align 4096
pml4: .skip 4096
pdpt: .skip 4096
pd:   .skip 4096
stack: .skip 16384
stack_top:

    .section .note.GNU-stack, "", @progbits
