//! The `lab` guest: a no_std program of a few hundred bytes that the monitor boots
//! through the same ELF/PVH path as a Linux vmlinux. It enters in 32-bit protected
//! mode (PVH, paging off, flat segments), walks every event of the marker protocol
//! (console line on COM1 plus the one-byte code on the marker port), including the
//! `snapshot` point right before its workload, prints one
//! workload line, and ends the VM through the exit port with status 0. With
//! `bootlab.hold` first on its command line it waits at the snapshot point until a
//! byte arrives on COM1: a monitor that cannot save the machine at a port write
//! (Firecracker, paused through its API) saves it in that loop, and the restored
//! guest is released by one console byte.
//!
//! Every instruction runs under KVM's instruction emulator on PVM hosts, at about a
//! microsecond each, so the program is kept to plain `lodsb`/`out`/`loop` sequences.
//! Built by vmm/build.rs with the host target and a linker script (no other target
//! can be installed on our machines).

#![no_std]
#![no_main]

use core::arch::global_asm;

global_asm!(
    r#"
    .set COM1, 0x3f8
    .set MARKER_PORT, 0x0b1a
    .set EXIT_PORT, 0x501
    .set COM1_LSR, 0x3fd
    .set SI_CMDLINE, 24

    .section .text.entry, "ax"
    .code32
    .globl lab_pvh_entry
lab_pvh_entry:
    cld
    mov $lab_stack_top, %esp
    mov %ebx, %edi /* hvm_start_info, read at the snapshot point */
    lea msg_boot, %esi
    mov $(msg_boot_end - msg_boot), %ecx
    call puts

    mov $1, %bl
    lea msg_init, %esi
    mov $(msg_init_end - msg_init), %ecx
    call mark

    /* The snapshot point: a monitor asked to (--snapshot-at snapshot) saves the
       machine at this marker's port write, so a restored run starts here. */
    mov $4, %bl
    lea msg_snap, %esi
    mov $(msg_snap_end - msg_snap), %ecx
    call mark
    call hold

    mov $2, %bl
    lea msg_exec, %esi
    mov $(msg_exec_end - msg_exec), %ecx
    call mark

    lea msg_hello, %esi
    mov $(msg_hello_end - msg_hello), %ecx
    call puts

    mov $3, %bl
    lea msg_done, %esi
    mov $(msg_done_end - msg_done), %ecx
    call mark

    mov $EXIT_PORT, %dx
    xor %eax, %eax
    out %al, %dx
3:  hlt
    jmp 3b

    /* mark: console line at esi (ecx bytes) on COM1, then code bl on the marker port */
mark:
    call puts
    mov $MARKER_PORT, %dx
    mov %bl, %al
    out %al, %dx
    ret

    /* hold: with `bootlab.hold` at the start of the command line, wait until COM1
       has a byte and take it. Only the start is compared, so that a guest without
       the switch spends a few instructions here. */
hold:
    mov SI_CMDLINE(%edi), %esi
    test %esi, %esi
    jz 9f
    cmpl $0x746f6f62, (%esi) /* "boot" */
    jne 9f
    cmpl $0x2e62616c, 4(%esi) /* "lab." */
    jne 9f
    cmpl $0x646c6f68, 8(%esi) /* "hold" */
    jne 9f
    mov $COM1_LSR, %dx
1:  in %dx, %al
    test $1, %al
    jz 1b
    mov $COM1, %dx
    in %dx, %al
9:  ret

    /* puts: ecx bytes at esi to COM1 */
puts:
    mov $COM1, %dx
1:  lodsb
    out %al, %dx
    loop 1b
    ret

    .section .rodata.lab, "a"
msg_boot: .ascii "lab: guest entered via PVH\n"
msg_boot_end:
msg_init: .ascii "@@bootlab init-start\n"
msg_init_end:
msg_snap: .ascii "@@bootlab snapshot\n"
msg_snap_end:
msg_exec: .ascii "@@bootlab exec\n"
msg_exec_end:
msg_hello: .ascii "hello from the lab guest\n"
msg_hello_end:
msg_done: .ascii "@@bootlab done\n"
msg_done_end:

    .section .bss.stack, "aw", @nobits
    .balign 16
    .skip 256
    .globl lab_stack_top
lab_stack_top:

    /* PVH entry note (Xen ELF note type 18, XEN_ELFNOTE_PHYS32_ENTRY): the 32-bit
       physical address a PVH loader jumps to. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long lab_pvh_entry
    .balign 4
    .code64
"#,
    options(att_syntax)
);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
