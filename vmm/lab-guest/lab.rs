//! The `lab` guest: a no_std program of a few hundred bytes that the monitor boots
//! through the same ELF/PVH path as a Linux vmlinux. It enters in 32-bit protected
//! mode (PVH, paging off, flat segments), walks every event of the marker protocol
//! (console line on COM1 plus the one-byte code on the marker port), including the
//! `snapshot` point right before its workload, prints one
//! workload line, and ends the VM through the exit port with status 0.
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

    .section .text.entry, "ax"
    .code32
    .globl lab_pvh_entry
lab_pvh_entry:
    cld
    mov $lab_stack_top, %esp
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
