//! The `fuzz` guest: a hostile relative of the lab guest (same PVH entry, same linker
//! script) that attacks the monitor from inside the VM. The command line chooses the
//! mode and the seed of its xorshift32 generator, `MODE [SEED]` (decimal, default 1),
//! so the same command line replays the same sequence of accesses:
//!
//! - `sweep`: every I/O port 0..=0xffff gets a pseudo-random write of a random width
//!   (byte, word, dword, or a `rep outsb` of 1..16 bytes) and is read back the same
//!   way; then random MMIO writes and read-backs: in the boot-timer page, anywhere
//!   from the end of guest RAM (read from the PVH memory map) up to 4 GiB (the MMIO
//!   gap included), and above 4 GiB through a paging window. It ends through the
//!   exit port with status 42 ("survived").
//!   Skipped, because they end the VM on purpose: the exit port 0x501 and the i8042
//!   command port 0x64 (0xfe resets). Skipped in MMIO: the IO-APIC and local-APIC
//!   pages, which the host kernel emulates (a random ICR write sends INIT to the
//!   guest itself, a random redirection entry routes the PIT to NMI): the guest would
//!   legitimately kill itself there, and no access reaches the monitor.
//! - `hypercall`: `vmcall` and `vmmcall` with random registers (half with small
//!   hypercall numbers that KVM implements), then exit status 42.
//! - `triple`: `ud2` with an empty IDT: #UD, #GP, double fault, triple fault.
//! - `spin`: interrupts off, `jmp .` forever.
//! - `flood`: the serial port, as fast as the guest can, forever: alternately a line
//!   by `rep outsb` and the same line by single `out`s.
//! - `markers`: the `done` marker, forever, on both channels at once: a code on the
//!   marker port and a `@@bootlab done` line on the console.
//! - `echo`: waits for serial input, takes four bytes with one `rep insb` (KVM hands
//!   them over in one exit), prints them back and exits with status 42.
//!
//! - `virtio`: attacks the virtio-blk device in the first virtio-mmio slot (give
//!   the VM a `--disk`): a chain that loops, a next index past the table, a
//!   header outside guest memory, a buffer in the MMIO gap, a length past the end
//!   of memory, an available index that jumps, a queue size that is not a power of
//!   two, one above the maximum; after each the device must be marked
//!   DEVICE_NEEDS_RESET (`fuzz: virtio attack N: needs-reset`). Then a storm of
//!   notifications and a reset between a request and its notify, each followed by
//!   a read that must work (`... done, read ok`); exit status 42.
//!
//! - `virtio-vsock`: attacks the virtio-vsock device (`--vsock`, with a host
//!   listener on `PATH_1234`): broken rings, TX and RX (`... attack N:
//!   needs-reset`, 1-7), then broken packet headers in sound chains, which must
//!   cost only their stream a RST (`...: rst, serving`, 8-12); then a flood of
//!   packets for no stream with no receive buffer offered, after which the RSTs
//!   that come are counted (the device keeps a bounded number); then a storm and a
//!   reset with a stream in flight, each followed by a stream to the host that must
//!   work; exit status 42. The rules are written above its code.
//!
//! - `virtio-net`: attacks the virtio-net card (`--net`, with a host that answers
//!   each `fuzz net ping` frame with a larger one): broken rings (`... attack N:
//!   needs-reset`, 1-7), then frames that cannot go, which must only be dropped
//!   (`...: dropped, serving`, 8-9); then a storm and a reset with a frame on its
//!   way in, each followed by a frame out (`... done, sent`); exit status 42.
//!
//! - `rtdisk N` / `rtport N`: N disk reads (one notify each) / N writes of an
//!   unknown code to the marker port, then status 42: the round-trip benchmark.
//!
//! Unknown modes print a message and exit with status 2. Built like the lab guest by
//! vmm/build.rs (32-bit code, no std), so everything here is hand-written assembly.

#![no_std]
#![no_main]

use core::arch::global_asm;

global_asm!(include_str!("virtio_mmio.s"), options(att_syntax));

global_asm!(
    r#"
    .set COM1, 0x3f8
    .set COM1_IER, 0x3f9
    .set COM1_LCR, 0x3fb
    .set COM1_MCR, 0x3fc
    .set COM1_LSR, 0x3fd
    .set MARKER_PORT, 0x0b1a
    .set MARKER_DONE, 3
    .set LSR_DATA_READY, 1
    .set ECHO_LEN, 4
    .set EXIT_PORT, 0x501
    .set I8042_COMMAND, 0x64
    .set STATUS_DONE, 42
    .set STATUS_BAD_MODE, 2
    .set BOOT_TIMER, 0xd0000000
    .set IOAPIC_PAGE, 0xfec00000
    .set LAPIC_PAGE, 0xfee00000
    /* hvm_start_info offsets, and the size and fields of a memory map entry */
    .set SI_CMDLINE, 24
    .set SI_MEMMAP, 40
    .set SI_MEMMAP_ENTRIES, 48
    .set MM_SIZE, 24
    .set E820_RAM, 1
    /* counts of MMIO accesses (each a write and a read) per region */
    .set N_TIMER, 256
    .set N_LOW, 2048
    .set N_HIGH, 2048
    .set N_HYPERCALL, 256
    /* paging: window of 2 MiB at this virtual address (PD1[0]) */
    .set WINDOW, 0x40000000
    .set PDE_LARGE_RW_P, 0x83
    .set TABLE_RW_P, 0x3
    .set CR4_PAE, 0x20
    .set CR0_PG, 0x80000000
    .set MSR_EFER, 0xc0000080
    .set EFER_LME, 0x100

    .section .text.entry, "ax"
    .code32
    .globl lab_pvh_entry
lab_pvh_entry:
    cld
    cli
    mov $lab_stack_top, %esp
    mov %ebx, start_info
    /* Echo the command line. */
    lea msg_hello, %esi
    mov $(msg_hello_end - msg_hello), %ecx
    call puts
    mov SI_CMDLINE(%ebx), %esi
    call putz
    lea msg_nl, %esi
    mov $1, %ecx
    call puts
    /* Seed: the decimal number after the first space, or 1. */
    mov SI_CMDLINE(%ebx), %esi
    xor %ebp, %ebp
1:  lodsb
    test %al, %al
    jz 3f
    cmp $' ', %al
    jne 1b
2:  lodsb
    sub $'0', %al
    cmp $9, %al
    ja 3f
    movzbl %al, %eax
    imul $10, %ebp, %ebp
    add %eax, %ebp
    jmp 2b
3:  test %ebp, %ebp
    jnz 4f
    inc %ebp
4:  /* Mode: the first four bytes of the command line. */
    mov SI_CMDLINE(%ebx), %esi
    mov (%esi), %eax
    cmp $0x65657773, %eax /* "swee" */
    je sweep
    test %al, %al
    jz sweep
    cmp $0x65707968, %eax /* "hype" */
    je hypercall
    cmp $0x70697274, %eax /* "trip" */
    je triple
    cmp $0x6e697073, %eax /* "spin" */
    je spin
    cmp $0x6f6f6c66, %eax /* "floo" */
    je flood
    cmp $0x6f686365, %eax /* "echo" */
    je echo
    cmp $0x6b72616d, %eax /* "mark" */
    je markers
    cmp $0x74726976, %eax /* "virt" */
    je virtio
    cmp $0x69647472, %eax /* "rtdi" */
    je rtdisk
    cmp $0x6f707472, %eax /* "rtpo" */
    je rtport
bad_mode:
    lea msg_bad, %esi
    mov $(msg_bad_end - msg_bad), %ecx
    call puts
    mov $STATUS_BAD_MODE, %al
    jmp exit

sweep:
    call sweep_ports
    call serial_sane
    lea msg_ports, %esi
    mov $(msg_ports_end - msg_ports), %ecx
    call puts
    call sweep_mmio
    lea msg_mmio, %esi
    mov $(msg_mmio_end - msg_mmio), %ecx
    call puts
done:
    lea msg_done, %esi
    mov $(msg_done_end - msg_done), %ecx
    call puts
    mov $STATUS_DONE, %al
exit:
    mov $EXIT_PORT, %dx
    out %al, %dx
5:  hlt
    jmp 5b

    /* rand: next xorshift32 value of the state in ebp, into eax */
rand:
    mov %ebp, %eax
    shl $13, %eax
    xor %eax, %ebp
    mov %ebp, %eax
    shr $17, %eax
    xor %eax, %ebp
    mov %ebp, %eax
    shl $5, %eax
    xor %eax, %ebp
    mov %ebp, %eax
    ret

    /* sweep_ports: a random write and a read-back on every port but the two that
       end the VM. Width from the top three bits: 0-3 byte, 4-5 word, 6 dword,
       7 string (rep outsb + rep insb of 1..16 bytes through `scratch`). */
sweep_ports:
    xor %ebx, %ebx
1:  cmp $EXIT_PORT, %ebx
    je 9f
    cmp $I8042_COMMAND, %ebx
    je 9f
    mov %ebx, %edx
    call rand
    /* Byte accesses only just below the two skipped ports: a wider access there
       would reach them on a machine that splits it into bytes (QEMU does). */
    lea -(EXIT_PORT - 3)(%ebx), %ecx
    cmp $3, %ecx
    jb 2f
    lea -(I8042_COMMAND - 3)(%ebx), %ecx
    cmp $3, %ecx
    jb 2f
    mov %eax, %ecx
    shr $29, %ecx
    cmp $4, %ecx
    jb 2f
    cmp $6, %ecx
    jb 3f
    je 4f
    mov %eax, %ecx
    and $15, %ecx
    inc %ecx
    push %ecx
    lea scratch, %esi
    rep outsb
    pop %ecx
    lea scratch, %edi
    rep insb
    jmp 9f
2:  out %al, %dx
    in %dx, %al
    jmp 9f
3:  out %ax, %dx
    in %dx, %ax
    jmp 9f
4:  out %eax, %dx
    in %dx, %eax
9:  inc %ebx
    cmp $0x10000, %ebx
    jne 1b
    ret

    /* serial_sane: undo what the sweep did to COM1 (divisor latch, loopback,
       interrupts) so that the closing lines reach the console. */
serial_sane:
    mov $COM1_LCR, %dx
    mov $3, %al
    out %al, %dx
    mov $COM1_MCR, %dx
    xor %al, %al
    out %al, %dx
    mov $COM1_IER, %dx
    out %al, %dx
    ret

    /* access: a random-width write of eax at esi, then a read back */
access:
    mov %eax, %ecx
    shr $30, %ecx
    jz 1f
    dec %ecx
    jz 2f
    mov %eax, (%esi)
    mov (%esi), %eax
    ret
1:  mov %al, (%esi)
    mov (%esi), %al
    ret
2:  mov %ax, (%esi)
    mov (%esi), %ax
    ret

sweep_mmio:
    /* The boot-timer page (the magic 123 among the values now and then). */
    mov $N_TIMER, %ebx
1:  call rand
    mov %eax, %esi
    and $0xff8, %esi
    add $BOOT_TIMER, %esi
    call access
    dec %ebx
    jnz 1b
    lea msg_timer, %esi
    mov $(msg_timer_end - msg_timer), %ecx
    call puts
    /* ram_end: the highest end of a RAM entry below 4 GiB in the memory map. */
    mov start_info, %edx
    mov SI_MEMMAP_ENTRIES(%edx), %ecx
    mov SI_MEMMAP(%edx), %edx
    mov $0x100000, %edi
    jecxz 4f
2:  cmpl $E820_RAM, 16(%edx)
    jne 3f
    cmpl $0, 4(%edx)
    jne 3f
    mov (%edx), %eax
    add 8(%edx), %eax
    jc 3f
    cmp %edi, %eax
    jbe 3f
    mov %eax, %edi
3:  add $MM_SIZE, %edx
    loop 2b
4:  /* Random addresses in [ram_end, 4 GiB - 8), minus the two APIC pages. */
    mov $-8, %ecx
    sub %edi, %ecx
    mov %ecx, range
    mov $N_LOW, %ebx
40: call rand
    xor %edx, %edx
    divl range
    lea (%edi, %edx), %esi
    mov %esi, %eax
    and $0xfffff000, %eax
    cmp $IOAPIC_PAGE, %eax
    je 5f
    cmp $LAPIC_PAGE, %eax
    je 5f
    call rand
    call access
5:  dec %ebx
    jnz 40b
    lea msg_low, %esi
    mov $(msg_low_end - msg_low), %ecx
    call puts
    /* Above 4 GiB: 4-level paging in long mode's compatibility mode (the code stays
       32-bit; the emulated KVM here runs no legacy PAE paging), identity maps of
       0-1 GiB and 3-4 GiB, and a 2 MiB window at 1 GiB moved to a random frame in
       [4 GiB, 64 GiB) each time. */
    lea pd0, %edi
    mov $PDE_LARGE_RW_P, %eax
    mov $512, %ecx
6:  mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 6b
    lea pd3, %edi
    mov $(0xc0000000 + PDE_LARGE_RW_P), %eax
    mov $512, %ecx
7:  mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 7b
    lea pd0, %eax
    or $TABLE_RW_P, %eax
    mov %eax, pdpt
    lea pd1, %eax
    or $TABLE_RW_P, %eax
    mov %eax, pdpt + 8
    lea pd3, %eax
    or $TABLE_RW_P, %eax
    mov %eax, pdpt + 24
    lea pdpt, %eax
    or $TABLE_RW_P, %eax
    mov %eax, pml4
    lea pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $CR0_PG, %eax
    mov %eax, %cr0
    mov $N_HIGH, %ebx
8:  call rand
    xor %edx, %edx
    mov $15, %ecx
    div %ecx
    inc %edx
    mov %edx, pd1 + 4
    call rand
    and $0xffe00000, %eax
    or $PDE_LARGE_RW_P, %eax
    mov %eax, pd1
    invlpg WINDOW
    call rand
    mov %eax, %esi
    and $0x1ffff8, %esi
    add $WINDOW, %esi
    call rand
    call access
    dec %ebx
    jnz 8b
    ret

hypercall:
    mov $N_HYPERCALL, %edi
1:  call rand
    mov %eax, %ebx
    call rand
    mov %eax, %ecx
    call rand
    mov %eax, %edx
    call rand
    mov %eax, %esi
    call rand
    test $1, %edi
    jz 2f
    and $0x1f, %eax
2:  test $2, %edi
    jz 3f
    vmcall
    jmp 4f
3:  vmmcall
4:  dec %edi
    jnz 1b
    lea msg_hyper, %esi
    mov $(msg_hyper_end - msg_hyper), %ecx
    call puts
    jmp done

triple:
    lea msg_triple, %esi
    mov $(msg_triple_end - msg_triple), %ecx
    call puts
    lidt null_idt
    ud2

spin:
    lea msg_spin, %esi
    mov $(msg_spin_end - msg_spin), %ecx
    call puts
1:  jmp 1b

flood:
    mov $COM1, %dx
1:  lea msg_flood_rep, %esi
    mov $(msg_flood_rep_end - msg_flood_rep), %ecx
    rep outsb
    lea msg_flood_out, %esi
    mov $(msg_flood_out_end - msg_flood_out), %ecx
    call puts
    jmp 1b

markers:
1:  mov $MARKER_PORT, %dx
    mov $MARKER_DONE, %al
    out %al, %dx
    lea msg_marker, %esi
    mov $(msg_marker_end - msg_marker), %ecx
    call puts
    jmp 1b

echo:
    mov $COM1_LSR, %dx
1:  in %dx, %al
    test $LSR_DATA_READY, %al
    jz 1b
    mov $COM1, %dx
    lea scratch, %edi
    mov $ECHO_LEN, %ecx
    rep insb
    lea msg_echo, %esi
    mov $(msg_echo_end - msg_echo), %ecx
    call puts
    lea scratch, %esi
    mov $ECHO_LEN, %ecx
    call puts
    lea msg_nl, %esi
    mov $1, %ecx
    call puts
    jmp done

    /* virtio: attacks on the virtio-blk device in the first virtio-mmio slot
       (`--disk`), each after a fresh set-up; after each the device must say
       DEVICE_NEEDS_RESET ("fuzz: virtio attack N: needs-reset"). Then a
       notification storm and a reset between a request and its notify, each
       followed by a good read, which must still work. */
    .set N_STORM, 10000
    .macro DESC i, lo, hi, len, flags, next
    movl \lo, vq_desc + 16 * \i
    movl \hi, vq_desc + 16 * \i + 4
    movl \len, vq_desc + 16 * \i + 8
    movl $(\flags | \next << 16), vq_desc + 16 * \i + 12
    .endm
virtio:
    /* "virtio-vsock" and "virtio-net" attack those devices; "virtio" alone the disk */
    cmpb $'-', 6(%esi)
    jne 1f
    cmpb $'v', 7(%esi)
    je virtio_vsock
    cmpb $'n', 7(%esi)
    je virtio_net
    jmp bad_mode
1:  mov $VIRTIO, %ebx
    cmpl $VIRTIO_MAGIC, (%ebx)
    je 1f
    lea msg_nodev, %esi
    mov $(msg_nodev_end - msg_nodev), %ecx
    call puts
    mov $STATUS_BAD_MODE, %al
    jmp exit
1:  /* 1: a chain that loops */
    call vsetup8
    DESC 0, $vq_hdr, $0, $16, D_NEXT, 1
    DESC 1, $vq_data, $0, $512, (D_NEXT | D_WRITE), 0
    call vsubmit
    mov $'1', %al
    call vcheck
    /* 2: a next index past the table */
    call vsetup8
    DESC 0, $vq_hdr, $0, $16, D_NEXT, 200
    call vsubmit
    mov $'2', %al
    call vcheck
    /* 3: a header at 1 TiB, outside guest memory */
    call vsetup8
    DESC 0, $0, $0x100, $16, D_NEXT, 1
    DESC 1, $vq_status, $0, $1, D_WRITE, 0
    call vsubmit
    mov $'3', %al
    call vcheck
    /* 4: a data buffer in the MMIO gap (the boot timer's page) */
    call vsetup8
    movl $0, vq_hdr
    DESC 0, $vq_hdr, $0, $16, D_NEXT, 1
    DESC 1, $0xd0000000, $0, $512, (D_NEXT | D_WRITE), 2
    DESC 2, $vq_status, $0, $1, D_WRITE, 0
    call vsubmit
    mov $'4', %al
    call vcheck
    /* 5: a data length that runs past the end of memory */
    call vsetup8
    DESC 1, $vq_data, $0, $0xfffffe00, (D_NEXT | D_WRITE), 2
    call vsubmit
    mov $'5', %al
    call vcheck
    /* 6: an available index that jumps ahead by more than the queue size */
    call vsetup8
    movw $1000, vq_avail + 2
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    mov $'6', %al
    call vcheck
    /* 7: a queue size that is not a power of two; 8: one above the maximum */
    mov $7, %eax
    call vsetup
    mov $'7', %al
    call vcheck
    mov $4096, %eax
    call vsetup
    mov $'8', %al
    call vcheck
    /* a notification storm, then a good read */
    call vsetup8
    mov $N_STORM, %ecx
2:  movl $0, VM_QUEUE_NOTIFY(%ebx)
    loop 2b
    lea msg_storm, %esi
    mov $(msg_storm_end - msg_storm), %ecx
    call puts
    call vread
    /* a request made available, a reset before its notify, then a good read */
    call vsetup8
    call vrequest
    movw $1, vq_avail + 2
    movl $0, VM_STATUS(%ebx)
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    lea msg_midreset, %esi
    mov $(msg_midreset_end - msg_midreset), %ecx
    call puts
    call vsetup8
    call vread
    jmp done

    /* rtdisk N: N reads of sector 0 from the --disk device, one notify each, each
       waited for in the used ring; then status 42 if the used ring counted them
       all. rtport N: N writes of the unknown code 0 to the
       marker port. Side by side they give a disk read's round trip against a port
       write's (vmm/benches/vmm_setup.rs). */
rtdisk:
    mov $VIRTIO, %ebx
    cmpl $VIRTIO_MAGIC, (%ebx)
    jne 8f
    call vsetup8
    call vrequest
    movl $0, vq_avail + 4
    movl $0, vq_avail + 8
    movl $0, vq_avail + 12
    movl $0, vq_avail + 16
    mov %ebp, %ecx
    xor %edi, %edi
1:  inc %edi
    mov %di, vq_avail + 2
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    cmp %di, vq_used + 2
    je 2f
    call vused
2:  loop 1b
    cmp %di, vq_used + 2
    jne 8f
    cmpb $0, vq_status
    jne 8f
    jmp done
8:  lea msg_read_failed, %esi
    mov $(msg_read_failed_end - msg_read_failed), %ecx
    call puts
    mov $STATUS_BAD_MODE, %al
    jmp exit
rtport:
    mov %ebp, %ecx
    mov $MARKER_PORT, %dx
    xor %al, %al
1:  out %al, %dx
    loop 1b
    jmp done

    /* vsetup8 / vsetup: reset, negotiate VIRTIO_F_VERSION_1, queue 0 of size 8
       (or eax) at vq_desc/vq_avail/vq_used, both ring indices zeroed, DRIVER_OK */
vsetup8:
    mov $8, %eax
vsetup:
    movl $0, VM_STATUS(%ebx)
    movw $0, vq_avail + 2
    movw $0, vq_used + 2
    movl $3, VM_STATUS(%ebx)
    movl $1, 0x24(%ebx)
    movl $1, 0x20(%ebx)
    movl $11, VM_STATUS(%ebx)
    movl $0, 0x30(%ebx)
    movl %eax, VM_QUEUE_NUM(%ebx)
    movl $vq_desc, 0x80(%ebx)
    movl $vq_avail, 0x90(%ebx)
    movl $vq_used, 0xa0(%ebx)
    movl $1, 0x44(%ebx)
    movl $15, VM_STATUS(%ebx)
    ret

    /* vsubmit: chain 0 made available as entry 0, index 1, then the notify */
vsubmit:
    movw $0, vq_avail + 4
    movw $1, vq_avail + 2
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    ret

    /* vcheck: "fuzz: virtio attack <al>: needs-reset" once the status says so
       (a device notified through an ioeventfd marks itself a little later), or
       "...: not marked" after about 2^33 TSC cycles */
vcheck:
    mov %al, msg_attack_n
    lea msg_attack, %esi
    mov $(msg_attack_end - msg_attack), %ecx
    call puts
    rdtsc
    mov %edx, %esi
2:  testl $S_NEEDS_RESET, VM_STATUS(%ebx)
    jnz 3f
    rdtsc
    sub %esi, %edx
    cmp $2, %edx
    jb 2b
    jmp 1f
3:  lea msg_marked, %esi
    mov $(msg_marked_end - msg_marked), %ecx
    call puts
    ret
1:  lea msg_unmarked, %esi
    mov $(msg_unmarked_end - msg_unmarked), %ecx
    call puts
    ret

    /* vused: until the used ring's index is di, for at most about 2^33 TSC
       cycles: a device notified through an ioeventfd completes the request after
       the notify write has returned */
vused:
    push %eax
    push %edx
    push %esi
    rdtsc
    mov %edx, %esi
1:  cmp %di, vq_used + 2
    je 2f
    pause
    rdtsc
    sub %esi, %edx
    cmp $2, %edx
    jb 1b
2:  pop %esi
    pop %edx
    pop %eax
    ret

    /* vrequest: a read of sector 0 in chain 0 (header, 512 bytes, status) */
vrequest:
    movl $0, vq_hdr
    DESC 0, $vq_hdr, $0, $16, D_NEXT, 1
    DESC 1, $vq_data, $0, $512, (D_NEXT | D_WRITE), 2
    DESC 2, $vq_status, $0, $1, D_WRITE, 0
    movb $0xff, vq_status
    movw $0, vq_avail + 4
    ret

    /* vread: vrequest submitted; prints "read ok" or "read failed" */
vread:
    call vrequest
    call vsubmit
    push %edi
    mov $1, %edi
    call vused
    pop %edi
    lea msg_read_failed, %esi
    mov $(msg_read_failed_end - msg_read_failed), %ecx
    cmpw $1, vq_used + 2
    jne 1f
    cmpb $0, vq_status
    jne 1f
    lea msg_read_ok, %esi
    mov $(msg_read_ok_end - msg_read_ok), %ecx
1:  call puts
    ret

    /* puts: ecx bytes at esi to COM1 */
puts:
    push %edx
    mov $COM1, %dx
1:  lodsb
    out %al, %dx
    loop 1b
    pop %edx
    ret

    /* putz: the NUL-terminated string at esi to COM1 */
putz:
    mov $COM1, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  ret

    .section .rodata.lab, "a"
    .balign 8
null_idt: .word 0
    .long 0
msg_hello: .ascii "fuzz: "
msg_hello_end:
msg_nl: .ascii "\n"
msg_bad: .ascii "fuzz: unknown mode (sweep|hypercall|triple|spin|flood|echo|markers|virtio|virtio-vsock|virtio-net|rtdisk|rtport)\n"
msg_bad_end:
msg_ports: .ascii "fuzz: ports done\n"
msg_ports_end:
msg_timer: .ascii "fuzz: boot-timer page done\n"
msg_timer_end:
msg_low: .ascii "fuzz: mmio below 4 GiB done\n"
msg_low_end:
msg_mmio: .ascii "fuzz: mmio above 4 GiB done\n"
msg_mmio_end:
msg_hyper: .ascii "fuzz: hypercalls done\n"
msg_hyper_end:
msg_done: .ascii "fuzz: survived\n"
msg_done_end:
msg_triple: .ascii "fuzz: triple fault next\n"
msg_triple_end:
msg_marker: .ascii "@@bootlab done\n"
msg_marker_end:
msg_echo: .ascii "fuzz: echo "
msg_echo_end:
msg_spin: .ascii "fuzz: spinning\n"
msg_spin_end:
msg_flood_rep: .ascii "flood: rep outsb 0123456789abcdefghijklmnopqrstuvwxyz\n"
msg_flood_rep_end:
msg_flood_out: .ascii "flood: out loop 0123456789abcdefghijklmnopqrstuvwxyz\n"
msg_flood_out_end:

msg_nodev: .ascii "fuzz: no virtio device (give --disk)\n"
msg_nodev_end:
msg_storm: .ascii "fuzz: virtio storm done, "
msg_storm_end:
msg_midreset: .ascii "fuzz: virtio reset mid-request done, "
msg_midreset_end:
msg_read_ok: .ascii "read ok\n"
msg_read_ok_end:
msg_read_failed: .ascii "read failed\n"
msg_read_failed_end:
msg_marked: .ascii ": needs-reset\n"
msg_marked_end:
msg_unmarked: .ascii ": not marked\n"
msg_unmarked_end:

    .section .data.fuzz, "aw"
msg_attack: .ascii "fuzz: virtio attack "
msg_attack_n: .ascii "0"
msg_attack_end:

    .section .bss.fuzz, "aw", @nobits
    .balign 4096
pd0: .skip 4096
pd1: .skip 4096
pd3: .skip 4096
pdpt: .skip 4096
pml4: .skip 4096
vq_desc: .skip 4096
vq_avail: .skip 256
vq_used: .skip 256
vq_hdr: .skip 16
vq_status: .skip 16
    .balign 512
vq_data: .skip 512
start_info: .skip 4
range: .skip 4
scratch: .skip 16
    .balign 16
    .skip 512
    .globl lab_stack_top
lab_stack_top:

    /* PVH entry note, as in the lab guest. */
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

/* The hostile virtio-vsock driver (`virtio-vsock`, give the VM a `--vsock`): its
   own part, using puts, done, exit and the register names of the part above. Each
   attack starts from a fresh set-up (reset, VIRTIO_F_VERSION_1, RX queue 0 and TX
   queue 1 of DQ_SIZE entries, DRIVER_OK) on a new local port. What the device must
   do depends on what broke:
   - the ring (a chain that loops, leaves its table or guest memory, has a buffer
     of the wrong direction or no room for the 44-byte header): the device cannot
     tell what the driver meant, so it marks itself DEVICE_NEEDS_RESET
     ("needs-reset");
   - one packet's header (a length its buffers do not hold or above 64 KiB, an
     unknown op or socket type, a stream that does not exist): that stream ends
     with a RST to our port and the device goes on serving ("rst, serving").
   Then a flood of packets for no stream with no receive buffer offered (the
   device must keep a bounded number of RSTs for us), a notification storm and a
   reset with a stream open and its data in flight, the last two each followed by
   a connection to host port VS_HOST_PORT that must work. */
global_asm!(
    r#"
    .code32
    .set DQ_SIZE, 8
    /* the offsets of the struct virtio_vsock_hdr fields we use (VS_HDR bytes) */
    .set H_SRC_PORT, 16
    .set H_DST_PORT, 20
    .set H_LEN, 24
    .set H_TYPE, 28
    .set H_OP, 30
    .set VS_RX_LEN, 128
    .set VS_BUF_ALLOC, 64
    .set VS_HOST_CID, 2
    .set VS_HOST_PORT, 1234
    .set VS_FIRST_PORT, 2000
    .set VS_PRINT_MAX, 64
    .set VS_FLOOD, 200
    .set OP_REQUEST, 1
    .set OP_RESPONSE, 2
    .set OP_RST, 3
    .set OP_RW, 5
    .set OP_UNKNOWN, 99
    .set TYPE_STREAM, 1
    .set TYPE_UNKNOWN, 2 /* not a stream: the device carries streams only */
    /* a payload above 64 KiB, read from our own image (guest RAM) */
    .set BIG_LEN, 0x20000
    .set BIG_AT, 0x100000
    /* waits end after this many 2^32 TSC ticks */
    .set WAIT_HI, 2

    /* QDESC q, i, ...: descriptor i of queue q (rq or tq) */
    .macro QDESC q, i, lo, hi, len, flags, next
    movl \lo, \q\()_desc + 16 * \i
    movl \hi, \q\()_desc + 16 * \i + 4
    movl \len, \q\()_desc + 16 * \i + 8
    movl $(\flags | \next << 16), \q\()_desc + 16 * \i + 12
    .endm

    .section .text.vsock, "ax"
virtio_vsock:
    mov $VIRTIO_ID_VSOCK, %eax
    call vfind
    jnz 1f
    lea msg_vs_nodev, %esi
    mov $(msg_vs_nodev_end - msg_vs_nodev), %ecx
    call puts
    mov $STATUS_BAD_MODE, %al
    jmp exit
1:  movl $msg_vs_name, dev_name
    movl $(msg_vs_name_end - msg_vs_name), dev_name_len
    mov VM_CONFIG(%ebx), %eax
    mov %eax, vs_cid
    movl $VS_FIRST_PORT, vs_lport

    /* 1: a TX chain that loops */
    call vs_setup
    call vs_fill0
    QDESC tq, 0, $pk_hdr, $0, $VS_HDR, D_NEXT, 1
    QDESC tq, 1, $pk_hdr, $0, $VS_HDR, D_NEXT, 0
    call tx_submit
    call dmarked
    /* 2: a next index past the table */
    call vs_setup
    call vs_fill0
    QDESC tq, 0, $pk_hdr, $0, $VS_HDR, D_NEXT, 200
    call tx_submit
    call dmarked
    /* 3: a header at 1 TiB, outside guest memory */
    call vs_setup
    call vs_fill0
    QDESC tq, 0, $0, $0x100, $VS_HDR, 0, 0
    call tx_submit
    call dmarked
    /* 4: a packet of 20 bytes, too short for its header */
    call vs_setup
    call vs_fill0
    QDESC tq, 0, $pk_hdr, $0, $20, 0, 0
    call tx_submit
    call dmarked
    /* 5: a TX header the device is to write */
    call vs_setup
    call vs_fill0
    QDESC tq, 0, $pk_hdr, $0, $VS_HDR, D_WRITE, 0
    call tx_submit
    call dmarked
    /* 6: an RX buffer the device may only read, then a packet that owes us a RST */
    call vs_setup
    QDESC rq, 0, $rx_buf, $0, $VS_RX_LEN, 0, 0
    call rx_offer
    call vs_fill0
    call tx_submit
    call dmarked
    /* 7: an RX buffer too short for a header, the same way */
    call vs_setup
    QDESC rq, 0, $rx_buf, $0, $20, D_WRITE, 0
    call rx_offer
    call vs_fill0
    call tx_submit
    call dmarked
    /* 8: a length field of 100 with 10 payload bytes, on no stream */
    call vs_setup
    mov $OP_RW, %eax
    mov $10, %ecx
    call vs_fill
    movl $100, pk_hdr + H_LEN
    call tx_send
    call vs_rst
    /* 9: a payload of 128 KiB that is all there, above a stream's 64 KiB */
    call vs_setup
    call vs_fill0
    movl $BIG_LEN, pk_hdr + H_LEN
    QDESC tq, 0, $pk_hdr, $0, $VS_HDR, D_NEXT, 1
    QDESC tq, 1, $BIG_AT, $0, $BIG_LEN, 0, 0
    call tx_send
    call vs_rst
    /* 10: an unknown op on an open stream */
    call vs_setup
    call vs_connect
    mov $OP_UNKNOWN, %eax
    xor %ecx, %ecx
    call vs_fill
    call tx_send
    call vs_rst
    /* 11: an unknown socket type on an open stream */
    call vs_setup
    call vs_connect
    call vs_fill0
    movw $TYPE_UNKNOWN, pk_hdr + H_TYPE
    call tx_send
    call vs_rst
    /* 12: data for a stream that was never opened */
    call vs_setup
    mov $OP_RW, %eax
    mov $10, %ecx
    call vs_fill
    call tx_send
    call vs_rst

    /* a flood of VS_FLOOD packets for streams that do not exist while no
       receive buffer is offered: the device owes a RST for each but keeps at
       most its bound of them; then the RSTs that come are counted */
    call vs_setup
    mov $VS_FLOOD, %edi
1:  incl vs_lport
    call vs_fill0
    call tx_send
    dec %edi
    jnz 1b
    xor %edi, %edi
2:  call vs_recv
    cmp $OP_RST, %eax
    jne 3f
    inc %edi
    jmp 2b
3:  lea msg_vs_flood, %esi
    mov $(msg_vs_flood_end - msg_vs_flood), %ecx
    call puts
    mov %edi, %eax
    call putdec
    lea msg_nl, %esi
    mov $1, %ecx
    call puts

    /* a notification storm on both queues, then a connection */
    call vs_setup
    mov $N_STORM, %ecx
2:  movl $1, VM_QUEUE_NOTIFY(%ebx)
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    loop 2b
    lea msg_vs_storm, %esi
    mov $(msg_vs_storm_end - msg_vs_storm), %ecx
    call puts
    call vs_connect
    lea msg_vs_connected, %esi
    mov $(msg_vs_connected_end - msg_vs_connected), %ecx
    je 3f
    lea msg_read_failed, %esi
    mov $(msg_read_failed_end - msg_read_failed), %ecx
3:  call puts

    /* a reset with a stream open, our line sent and the host's reply on its way;
       then a connection that carries a line both ways */
    call vs_setup
    call vs_connect
    call vs_line
    call rx_offer
    movl $0, VM_STATUS(%ebx)
    lea msg_vs_midreset, %esi
    mov $(msg_vs_midreset_end - msg_vs_midreset), %ecx
    call puts
    call vs_setup
    call vs_connect
    jne 8f
    call vs_line
    call vs_recv
    cmp $OP_RW, %eax
    jne 8f
    lea msg_vs_got, %esi
    mov $(msg_vs_got_end - msg_vs_got), %ecx
    call puts
    call vs_print
    jmp done
8:  lea msg_read_failed, %esi
    mov $(msg_read_failed_end - msg_read_failed), %ecx
    call puts
    jmp done

    /* vfind: the first virtio-mmio slot whose device has type eax, in ebx (0 and
       ZF set if none); the monitor fills its slots in order */
vfind:
    mov $VIRTIO, %ebx
    mov $VIRTIO_SLOTS, %ecx
1:  cmpl $VIRTIO_MAGIC, (%ebx)
    jne 8f
    cmpl %eax, VM_DEVICE_ID(%ebx)
    je 9f
    add $VIRTIO_SLOT_SIZE, %ebx
    loop 1b
8:  xor %ebx, %ebx
9:  test %ebx, %ebx
    ret

    /* vs_setup: dsetup, RX descriptor 0 the receive buffer, a new local port */
vs_setup:
    call dsetup
    QDESC rq, 0, $rx_buf, $0, $VS_RX_LEN, D_WRITE, 0
    incl vs_lport
    ret

    /* dsetup: reset the device at ebx, negotiate VIRTIO_F_VERSION_1, queues 0
       (rq) and 1 (tq) of DQ_SIZE entries with their indices zeroed, DRIVER_OK */
dsetup:
    movl $0, VM_STATUS(%ebx)
    movw $0, rq_avail + 2
    movw $0, rq_used + 2
    movw $0, tq_avail + 2
    movw $0, tq_used + 2
    movw $0, rx_seen
    movl $S_ACK_DRIVER, VM_STATUS(%ebx)
    movl $1, VM_DRIVER_FEATURES_SEL(%ebx)
    movl $1, VM_DRIVER_FEATURES(%ebx)
    movl $(S_ACK_DRIVER | S_FEATURES_OK), VM_STATUS(%ebx)
    movl $0, VM_QUEUE_SEL(%ebx)
    movl $DQ_SIZE, VM_QUEUE_NUM(%ebx)
    movl $rq_desc, VM_QUEUE_DESC(%ebx)
    movl $rq_avail, VM_QUEUE_AVAIL(%ebx)
    movl $rq_used, VM_QUEUE_USED(%ebx)
    movl $1, VM_QUEUE_READY(%ebx)
    movl $1, VM_QUEUE_SEL(%ebx)
    movl $DQ_SIZE, VM_QUEUE_NUM(%ebx)
    movl $tq_desc, VM_QUEUE_DESC(%ebx)
    movl $tq_avail, VM_QUEUE_AVAIL(%ebx)
    movl $tq_used, VM_QUEUE_USED(%ebx)
    movl $1, VM_QUEUE_READY(%ebx)
    movl $(S_ACK_DRIVER | S_FEATURES_OK | S_DRIVER_OK), VM_STATUS(%ebx)
    ret

    /* vs_fill: the header at pk_hdr of op eax with ecx payload bytes of
       msg_vsline, from vs_lport to the host's VS_HOST_PORT; TX descriptor 0 the
       header, chained to descriptor 1, the payload, if there is one. vs_fill0: an
       RW packet without payload. */
vs_fill0:
    mov $OP_RW, %eax
    xor %ecx, %ecx
vs_fill:
    mov vs_cid, %edx
    mov %edx, pk_hdr
    movl $0, pk_hdr + 4
    movl $VS_HOST_CID, pk_hdr + 8
    movl $0, pk_hdr + 12
    mov vs_lport, %edx
    mov %edx, pk_hdr + H_SRC_PORT
    movl $VS_HOST_PORT, pk_hdr + H_DST_PORT
    mov %ecx, pk_hdr + H_LEN
    movw $TYPE_STREAM, pk_hdr + H_TYPE
    mov %ax, pk_hdr + H_OP
    movl $0, pk_hdr + 32
    movl $VS_BUF_ALLOC, pk_hdr + 36
    movl $0, pk_hdr + 40
    QDESC tq, 0, $pk_hdr, $0, $VS_HDR, 0, 0
    QDESC tq, 1, $msg_vsline, $0, %ecx, 0, 0
    jecxz 1f
    movl $(D_NEXT | 1 << 16), tq_desc + 12
1:  ret

    /* tx_submit: TX chain 0 made available, then the notify; tx_send also waits
       until the device has used it (at most WAIT_HI * 2^32 TSC ticks) */
tx_submit:
    movzwl tq_avail + 2, %eax
    and $(DQ_SIZE - 1), %eax
    movw $0, tq_avail + 4(,%eax,2)
    incw tq_avail + 2
    movl $1, VM_QUEUE_NOTIFY(%ebx)
    ret
tx_send:
    call tx_submit
    rdtsc
    mov %edx, %esi
1:  mov tq_used + 2, %ax
    cmp tq_avail + 2, %ax
    je 2f
    pause
    rdtsc
    sub %esi, %edx
    cmp $WAIT_HI, %edx
    jb 1b
2:  ret

    /* rx_offer: RX chain 0 made available, then the notify; vs_recv also waits
       for the next packet in it: eax = its op, 0 if none came in time */
rx_offer:
    movzwl rq_avail + 2, %eax
    and $(DQ_SIZE - 1), %eax
    movw $0, rq_avail + 4(,%eax,2)
    incw rq_avail + 2
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    ret
vs_recv:
    call rx_offer
    rdtsc
    mov %edx, %esi
1:  mov rq_used + 2, %ax
    cmp rx_seen, %ax
    jne 2f
    pause
    rdtsc
    sub %esi, %edx
    cmp $WAIT_HI, %edx
    jb 1b
    xor %eax, %eax
    ret
2:  incw rx_seen
    movzwl rx_buf + H_OP, %eax
    ret

    /* vs_connect: REQUEST to the host's VS_HOST_PORT; ZF set on its RESPONSE */
vs_connect:
    mov $OP_REQUEST, %eax
    xor %ecx, %ecx
    call vs_fill
    call tx_send
    call vs_recv
    cmp $OP_RESPONSE, %eax
    ret

    /* vs_line: msg_vsline on the stream */
vs_line:
    mov $OP_RW, %eax
    mov $(msg_vsline_end - msg_vsline), %ecx
    call vs_fill
    jmp tx_send

    /* attack: "fuzz: <dev_name> attack N" for the next N */
attack:
    incb attack_no
    lea msg_hello, %esi
    mov $(msg_hello_end - msg_hello), %ecx
    call puts
    mov dev_name, %esi
    mov dev_name_len, %ecx
    call puts
    lea msg_dev_attack, %esi
    mov $(msg_dev_attack_end - msg_dev_attack), %ecx
    call puts
    movzbl attack_no, %eax
    /* putdec: eax in decimal to COM1; clobbers eax, ecx, edx */
putdec:
    mov $10, %ecx
    xor %edx, %edx
    div %ecx
    push %edx
    test %eax, %eax
    jz 1f
    call putdec
1:  pop %eax
    add $'0', %al
    mov $COM1, %dx
    out %al, %dx
    ret

    /* dmarked: the attack's line, ending ": needs-reset" once the status says so
       or ": not marked" after WAIT_HI * 2^32 TSC ticks */
dmarked:
    call attack
    rdtsc
    mov %edx, %edi
    lea msg_marked, %esi
    mov $(msg_marked_end - msg_marked), %ecx
1:  testl $S_NEEDS_RESET, VM_STATUS(%ebx)
    jnz 2f
    rdtsc
    sub %edi, %edx
    cmp $WAIT_HI, %edx
    jb 1b
    lea msg_unmarked, %esi
    mov $(msg_unmarked_end - msg_unmarked), %ecx
2:  jmp puts

    /* vs_rst: an RX buffer offered; the attack's line, ending ": rst, serving" when
       the next packet is a RST to our port and the device is not marked, else ":
       no rst" (or ": needs-reset") */
vs_rst:
    call vs_recv
    push %eax
    call attack
    pop %eax
    lea msg_vs_norst, %esi
    mov $(msg_vs_norst_end - msg_vs_norst), %ecx
    cmp $OP_RST, %eax
    jne 1f
    mov vs_lport, %eax
    cmp rx_buf + H_DST_PORT, %eax
    jne 1f
    lea msg_marked, %esi
    mov $(msg_marked_end - msg_marked), %ecx
    testl $S_NEEDS_RESET, VM_STATUS(%ebx)
    jnz 1f
    lea msg_vs_rst, %esi
    mov $(msg_vs_rst_end - msg_vs_rst), %ecx
1:  jmp puts

    /* vs_print: the received payload, up to VS_PRINT_MAX bytes or a newline, and
       a newline */
vs_print:
    lea rx_buf + VS_HDR, %esi
    mov rx_buf + H_LEN, %ecx
    cmp $VS_PRINT_MAX, %ecx
    jbe 1f
    mov $VS_PRINT_MAX, %ecx
1:  mov $COM1, %dx
    jecxz 3f
2:  lodsb
    cmp $10, %al
    je 3f
    out %al, %dx
    loop 2b
3:  mov $10, %al
    out %al, %dx
    ret

    .section .rodata.vsock, "a"
msg_vs_nodev: .ascii "fuzz: no vsock device (give --vsock)\n"
msg_vs_nodev_end:
msg_vs_name: .ascii "vsock"
msg_vs_name_end:
msg_dev_attack: .ascii " attack "
msg_dev_attack_end:
msg_vs_rst: .ascii ": rst, serving\n"
msg_vs_rst_end:
msg_vs_norst: .ascii ": no rst\n"
msg_vs_norst_end:
msg_vs_flood: .ascii "fuzz: vsock flood of 200 packets for no stream done, rsts: "
msg_vs_flood_end:
msg_vs_storm: .ascii "fuzz: vsock storm done, "
msg_vs_storm_end:
msg_vs_connected: .ascii "connect ok\n"
msg_vs_connected_end:
msg_vs_midreset: .ascii "fuzz: vsock reset mid-stream done, "
msg_vs_midreset_end:
msg_vs_got: .ascii "got: "
msg_vs_got_end:
msg_vsline: .ascii "fuzz vsock\n"
msg_vsline_end:

    /* both queues, the receive buffer, the packet header and the driver's state */
    .section .bss.vsock, "aw", @nobits
    VQ_MEM rq, DQ_SIZE
    VQ_MEM tq, DQ_SIZE
    .balign 16
rx_buf: .skip VS_RX_LEN
pk_hdr: .skip VS_HDR
vs_cid: .skip 4
vs_lport: .skip 4
dev_name: .skip 4
dev_name_len: .skip 4
rx_seen: .skip 2
attack_no: .skip 1
    .code64
"#,
    options(att_syntax)
);

/* The hostile virtio-net driver (`virtio-net`, give the VM a `--net`; a host
   that answers each `fuzz net ping` frame with a larger one): the same rule as
   for vsock. A broken ring (a TX chain that loops, leaves its table or guest
   memory, is shorter than the 12-byte virtio_net_hdr_v1 or device-writable; an
   RX buffer the device may only read or shorter than that header) gets the device
   marked DEVICE_NEEDS_RESET (attacks 1-7). A sound chain whose frame cannot go
   (a 128 KiB TX frame; an RX buffer of 64 bytes for a larger frame) costs only
   that frame: the chain comes back used and empty ("dropped, serving", 8-9). Then
   a notification storm and a reset with a frame on its way in, each followed by a
   frame the host must get. Uses the vsock part's queues and routines. */
global_asm!(
    r#"
    .code32
    .set NF_HEAD, NET_HDR + 14 /* with the Ethernet header */
    .set NET_RX_LEN, NET_HDR + 1514
    .set NET_SMALL_RX, 64
    .set NET_TINY, 8
    .set U_LEN0, 8 /* the first used entry's length, in a used ring */

    .section .text.net, "ax"
virtio_net:
    mov $VIRTIO_ID_NET, %eax
    call vfind
    jnz 1f
    lea msg_net_nodev, %esi
    mov $(msg_net_nodev_end - msg_net_nodev), %ecx
    call puts
    mov $STATUS_BAD_MODE, %al
    jmp exit
1:  movl $msg_net_name, dev_name
    movl $(msg_net_name_end - msg_net_name), dev_name_len
    /* our frames' source: the card's MAC */
    mov VM_CONFIG(%ebx), %eax
    mov %eax, nf_src
    movw VM_CONFIG + 4(%ebx), %ax
    movw %ax, nf_src + 4

    /* 1: a TX chain that loops */
    call dsetup
    QDESC tq, 0, $nf_head, $0, $NF_HEAD, D_NEXT, 1
    QDESC tq, 1, $nf_head, $0, $NF_HEAD, D_NEXT, 0
    call tx_submit
    call dmarked
    /* 2: a next index past the table */
    call dsetup
    QDESC tq, 0, $nf_head, $0, $NF_HEAD, D_NEXT, 200
    call tx_submit
    call dmarked
    /* 3: a frame at 1 TiB, outside guest memory */
    call dsetup
    QDESC tq, 0, $0, $0x100, $NF_HEAD, 0, 0
    call tx_submit
    call dmarked
    /* 4: a frame of 8 bytes, shorter than its header */
    call dsetup
    QDESC tq, 0, $nf_head, $0, $NET_TINY, 0, 0
    call tx_submit
    call dmarked
    /* 5: a TX buffer the device is to write */
    call dsetup
    QDESC tq, 0, $nf_head, $0, $NF_HEAD, D_WRITE, 0
    call tx_submit
    call dmarked
    /* 6: a frame on its way in (the ping's answer, or one an earlier attack
       left in the tap) and an RX buffer the device may only read. The ping goes
       first: a device marked by a frame already there would not send it. */
    call dsetup
    call net_ping
    QDESC rq, 0, $net_rx_buf, $0, $NET_RX_LEN, 0, 0
    call rx_offer
    call dmarked
    /* 7: a frame on its way in and an RX buffer of 8 bytes */
    call dsetup
    call net_ping
    QDESC rq, 0, $net_rx_buf, $0, $NET_TINY, D_WRITE, 0
    call rx_offer
    call dmarked
    /* 8: a TX frame of 128 KiB, all in guest memory */
    call dsetup
    QDESC tq, 0, $BIG_AT, $0, $BIG_LEN, 0, 0
    call tx_send
    lea tq_used, %edi
    call ddropped
    /* 9: a frame of 126 bytes on its way in and an RX buffer of 64 */
    call dsetup
    call net_ping
    QDESC rq, 0, $net_rx_buf, $0, $NET_SMALL_RX, D_WRITE, 0
    call rx_offer
    lea rq_used, %edi
    call ddropped

    /* a notification storm on both queues, then a frame */
    call dsetup
    mov $N_STORM, %ecx
2:  movl $1, VM_QUEUE_NOTIFY(%ebx)
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    loop 2b
    lea msg_net_storm, %esi
    mov $(msg_net_storm_end - msg_net_storm), %ecx
    call puts
    lea nf_storm, %esi
    mov $(nf_storm_end - nf_storm), %ecx
    call net_send
    call net_sent

    /* a reset with a receive buffer out and the host's answer on its way, then a
       frame */
    call dsetup
    QDESC rq, 0, $net_rx_buf, $0, $NET_RX_LEN, D_WRITE, 0
    call rx_offer
    call net_ping
    movl $0, VM_STATUS(%ebx)
    lea msg_net_midreset, %esi
    mov $(msg_net_midreset_end - msg_net_midreset), %ecx
    call puts
    call dsetup
    lea nf_after, %esi
    mov $(nf_after_end - nf_after), %ecx
    call net_send
    call net_sent
    jmp done

    /* net_send: a frame of nf_head and ecx payload bytes at esi (two
       descriptors), sent and waited for; net_ping: the frame the host answers */
net_ping:
    lea nf_ping, %esi
    mov $(nf_ping_end - nf_ping), %ecx
net_send:
    QDESC tq, 0, $nf_head, $0, $NF_HEAD, D_NEXT, 1
    QDESC tq, 1, %esi, $0, %ecx, 0, 0
    jmp tx_send

    /* net_sent: "sent" if the TX queue used all it was given and the device is
       not marked, else "not sent" */
net_sent:
    lea msg_net_notsent, %esi
    mov $(msg_net_notsent_end - msg_net_notsent), %ecx
    testl $S_NEEDS_RESET, VM_STATUS(%ebx)
    jnz 1f
    mov tq_used + 2, %ax
    cmp tq_avail + 2, %ax
    jne 1f
    lea msg_net_sent, %esi
    mov $(msg_net_sent_end - msg_net_sent), %ecx
1:  jmp puts

    /* ddropped: once the used ring at edi has its first entry (at most WAIT_HI *
       2^32 TSC ticks), the attack's line, ending ": dropped, serving" when that
       entry is empty and the device not marked, ": needs-reset" when marked, else
       ": not dropped" */
ddropped:
    rdtsc
    mov %edx, %esi
1:  cmpw $1, 2(%edi)
    je 2f
    pause
    rdtsc
    sub %esi, %edx
    cmp $WAIT_HI, %edx
    jb 1b
2:  call attack
    lea msg_marked, %esi
    mov $(msg_marked_end - msg_marked), %ecx
    testl $S_NEEDS_RESET, VM_STATUS(%ebx)
    jnz 3f
    lea msg_net_kept, %esi
    mov $(msg_net_kept_end - msg_net_kept), %ecx
    cmpw $1, 2(%edi)
    jne 3f
    cmpl $0, U_LEN0(%edi)
    jne 3f
    lea msg_net_dropped, %esi
    mov $(msg_net_dropped_end - msg_net_dropped), %ecx
3:  jmp puts

    .section .rodata.net, "a"
msg_net_nodev: .ascii "fuzz: no net device (give --net)\n"
msg_net_nodev_end:
msg_net_name: .ascii "net"
msg_net_name_end:
msg_net_dropped: .ascii ": dropped, serving\n"
msg_net_dropped_end:
msg_net_kept: .ascii ": not dropped\n"
msg_net_kept_end:
msg_net_storm: .ascii "fuzz: net storm done, "
msg_net_storm_end:
msg_net_midreset: .ascii "fuzz: net reset mid-traffic done, "
msg_net_midreset_end:
msg_net_sent: .ascii "sent\n"
msg_net_sent_end:
msg_net_notsent: .ascii "not sent\n"
msg_net_notsent_end:
nf_ping: .ascii "fuzz net ping\n"
nf_ping_end:
nf_storm: .ascii "fuzz net after the storm\n"
nf_storm_end:
nf_after: .ascii "fuzz net after the reset\n"
nf_after_end:

    /* A frame's head: an empty virtio-net header, the broadcast address, our
       MAC (filled in) and ethertype 0x88b5 ("local experimental"). */
    .section .data.net, "aw"
nf_head:
    .skip NET_HDR
    .byte 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
nf_src:
    .skip 6
    .byte 0x88, 0xb5

    .section .bss.net, "aw", @nobits
    .balign 16
net_rx_buf: .skip NET_RX_LEN
    .code64
"#,
    options(att_syntax)
);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
