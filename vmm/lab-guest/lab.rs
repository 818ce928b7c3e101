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
//! With a virtio-blk device in one of the first virtio-mmio slots (`bootlab vm run
//! --disk`) its workload also reads sector 0 through a minimal virtio driver and
//! prints the sector's first line (`lab: disk sector 0: ...`).
//!
//! With a virtio-vsock device (`--vsock`) it opens one stream to host CID 2 port
//! 1234, sends `bootlab lab vsock\n` (`lab: vsock sent`), prints the one reply it
//! reads (`lab: vsock got: ...`) and shuts the stream down. A reply that starts
//! with `listen` makes it then accept one host connection (`lab: vsock
//! listening`), send the same line on it (`lab: vsock accepted`) and shut it down.
//!
//! With a virtio-net device (`--net`) it sends one broadcast frame of ethertype
//! 0x88b5 ("local experimental") carrying `bootlab lab frame`, prints `lab: net
//! sent`, then waits (about 2^32 TSC cycles at most) for a frame of that ethertype
//! and prints its payload (`lab: net got: ...`); other frames (IPv6 neighbour
//! discovery, ...) are skipped.
//!
//! Every instruction runs under KVM's instruction emulator on PVM hosts, at about a
//! microsecond each, so the program is kept to plain `lodsb`/`out`/`loop` sequences.
//! Built by vmm/build.rs with the host target and a linker script (no other target
//! can be installed on our machines).

#![no_std]
#![no_main]

use core::arch::global_asm;

global_asm!(include_str!("virtio_mmio.s"), options(att_syntax));

global_asm!(
    r#"
    .set COM1, 0x3f8
    .set MARKER_PORT, 0x0b1a
    .set EXIT_PORT, 0x501
    .set COM1_LSR, 0x3fd
    .set SI_CMDLINE, 24
    /* The virtio-mmio slots, registers and bits are in virtio_mmio.s. The disk
       queue's size: */
    .set VQ_SIZE, 8
    /* A queue's record (see virtio_queue): its size, then the addresses of its
       descriptor table, available ring and used ring. */
    .set Q_SIZE, 0
    .set Q_DESC, 4
    .set Q_AVAIL, 8
    .set Q_USED, 12
    .set SECTOR_PRINT_MAX, 64

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
    call disk
    call vsock
    call lab_net

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

    /* find_virtio: the base of the first virtio-mmio slot whose device has type
       eax, in ebx (0 and ZF set if none). The monitor fills its slots in order,
       so the first empty one ends the search: without devices it costs one MMIO
       exit. Clobbers ecx. */
find_virtio:
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

    /* virtio_start: for the device at %ebx (from find_virtio), check that it has
       the version 2 register layout, reset it, acknowledge it and negotiate
       VIRTIO_F_VERSION_1 alone. ZF is set when the device is not usable (another
       layout, or FEATURES_OK did not stick); the caller sets its queues up and
       then DRIVER_OK. Clobbers %eax. */
virtio_start:
    cmpl $2, VM_VERSION(%ebx)
    jne 8f
    movl $0, VM_STATUS(%ebx)
    movl $S_ACK_DRIVER, VM_STATUS(%ebx)
    movl $1, VM_DRIVER_FEATURES_SEL(%ebx)
    movl $1, VM_DRIVER_FEATURES(%ebx) /* VIRTIO_F_VERSION_1, bit 32 */
    movl $(S_ACK_DRIVER | S_FEATURES_OK), VM_STATUS(%ebx)
    testl $S_FEATURES_OK, VM_STATUS(%ebx)
    ret
8:  xor %eax, %eax
    ret

    /* virtio_queue: sets queue %eax of the device at %ebx up from the record at
       %esi (Q_SIZE, Q_DESC, Q_AVAIL, Q_USED): selects it, checks that the device
       offers that many entries, writes the size and the three ring addresses and
       makes it ready. ZF is set when the device offers fewer (or no such queue).
       Clobbers %eax. */
virtio_queue:
    mov %eax, VM_QUEUE_SEL(%ebx)
    mov Q_SIZE(%esi), %eax
    cmp %eax, VM_QUEUE_NUM_MAX(%ebx)
    jb 8f
    mov %eax, VM_QUEUE_NUM(%ebx)
    mov Q_DESC(%esi), %eax
    mov %eax, VM_QUEUE_DESC(%ebx)
    mov Q_AVAIL(%esi), %eax
    mov %eax, VM_QUEUE_AVAIL(%ebx)
    mov Q_USED(%esi), %eax
    mov %eax, VM_QUEUE_USED(%ebx)
    movl $1, VM_QUEUE_READY(%ebx)
    test %ebx, %ebx
    ret
8:  xor %eax, %eax
    ret

    /* disk: if a virtio-blk device sits in one of the first virtio-mmio slots,
       set it up with one queue of VQ_SIZE, read sector 0 with one request
       (header, 512-byte buffer, status byte), and print the sector's text up to
       its first NUL or newline. The device may serve the request after the
       notify write returns (an ioeventfd): used_wait waits for it. */
disk:
    mov $VIRTIO_ID_BLOCK, %eax
    call find_virtio
    jz 9f
    call virtio_start
    jz 8f
    xor %eax, %eax
    lea vq_queue, %esi
    call virtio_queue
    jz 8f
    movl $(S_ACK_DRIVER | S_FEATURES_OK | S_DRIVER_OK), VM_STATUS(%ebx)
    /* descriptors: address (64 bits), length (32), flags (16), next (16) */
    movl $vq_hdr, vq_desc
    movl $16, vq_desc + 8
    movl $(D_NEXT | 1 << 16), vq_desc + 12
    movl $vq_data, vq_desc + 16
    movl $512, vq_desc + 24
    movl $(D_NEXT | D_WRITE | 2 << 16), vq_desc + 28
    movl $vq_status, vq_desc + 32
    movl $1, vq_desc + 40
    movl $D_WRITE, vq_desc + 44
    movb $0xff, vq_status
    /* available ring: entry 0 is chain 0, then the index moves to 1 */
    movw $0, vq_avail + 4
    movw $1, vq_avail + 2
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    /* a device that never answers is reported as failed */
    lea vq_used + 2, %esi
    mov $1, %ecx
    mov $2, %edi
    call used_wait
    jne 8f
    cmpb $0, vq_status
    jne 8f
    lea msg_disk, %esi
    mov $(msg_disk_end - msg_disk), %ecx
    call puts
    lea vq_data, %esi
    mov $SECTOR_PRINT_MAX, %ecx
    mov $COM1, %dx
1:  lodsb
    test %al, %al
    jz 2f
    cmp $10, %al
    je 2f
    out %al, %dx
    loop 1b
2:  mov $10, %al
    out %al, %dx
    ret
8:  lea msg_disk_failed, %esi
    mov $(msg_disk_failed_end - msg_disk_failed), %ecx
    call puts
9:  ret

    /* used_wait: until the used ring's 16-bit index at (%esi) is %cx, for at
       most %edi * 2^32 TSC ticks; ZF set if it got there. The disk, vsock and net
       drivers wait with it for what a notify asked: served during the notify
       write with notifications by exit, a moment later with an ioeventfd.
       Clobbers eax and edx. */
used_wait:
    push %ebp
    rdtsc
    mov %edx, %ebp
1:  cmp (%esi), %cx
    je 2f
    pause
    rdtsc
    sub %ebp, %edx
    cmp %edi, %edx
    jb 1b
    test %esp, %esp /* timed out: ZF clear */
2:  pop %ebp
    ret

    /* ---- vsock: one stream to the host, and one from it when asked ---- */
    .set VS_QSIZE, 4
    .set VS_RX_LEN, 128
    /* Our receive buffer for a stream (the host's credit): a reply fits one RX
       buffer. */
    .set VS_BUF_ALLOC, 64
    .set VS_HOST_CID, 2
    .set VS_HOST_PORT, 1234
    .set VS_LOCAL_PORT, 1024
    .set OP_REQUEST, 1
    .set OP_RESPONSE, 2
    .set OP_SHUTDOWN, 4
    .set OP_RW, 5
    .set SHUT_BOTH, 3
    /* Waiting for a packet ends after this many 2^32 TSC ticks (seconds). */
    .set VS_WAIT_TSC_HI, 8

    /* vsock: if a virtio-vsock device is there, set up its RX (0) and TX (1)
       queues, connect to the host's port VS_HOST_PORT, send msg_vs, print the
       reply, shut the stream down; with a reply starting "listen", accept one
       host connection and do the same on it. */
vsock:
    mov $VIRTIO_ID_VSOCK, %eax
    call find_virtio
    jz 9f
    call virtio_start
    jz 8f
    xor %eax, %eax
    lea vs_rx_queue, %esi
    call virtio_queue
    jz 8f
    mov $1, %eax
    lea vs_tx_queue, %esi
    call virtio_queue
    jz 8f
    movl $(S_ACK_DRIVER | S_FEATURES_OK | S_DRIVER_OK), VM_STATUS(%ebx)
    /* What stays the same in every packet and descriptor: our CID (below 2^32),
       the host's, the stream type, our buffer; RX descriptor 0 is the one receive
       buffer, TX descriptor 0 the header, chained to 1, the payload. Every ring
       entry is descriptor 0: zero, as .bss starts. */
    mov VM_CONFIG(%ebx), %eax
    mov %eax, vs_tx_hdr
    movl $VS_HOST_CID, vs_tx_hdr + 8
    movw $1, vs_tx_hdr + 28
    movl $VS_BUF_ALLOC, vs_tx_hdr + 36
    movl $vs_rx_buf, vs_rx_desc
    movl $VS_RX_LEN, vs_rx_desc + 8
    movw $D_WRITE, vs_rx_desc + 12
    movl $vs_tx_hdr, vs_tx_desc
    movl $VS_HDR, vs_tx_desc + 8
    movw $1, vs_tx_desc + 14
    movl $msg_vs, vs_tx_desc + 16
    movl $VS_LOCAL_PORT, vs_lport
    movl $VS_HOST_PORT, vs_pport

    mov $OP_REQUEST, %eax
    call vs_send0
    call vs_recv
    cmp $OP_RESPONSE, %eax
    jne 8f
    call vs_send_msg
    lea msg_vs_sent, %esi
    mov $(msg_vs_sent_end - msg_vs_sent), %ecx
    call puts
    call vs_recv
    cmp $OP_RW, %eax
    jne 8f
    lea msg_vs_got, %esi
    mov $(msg_vs_got_end - msg_vs_got), %ecx
    call puts
    call vs_print
    movzbl vs_rx_buf + VS_HDR, %eax
    push %eax
    call vs_shutdown
    pop %eax
    cmp $0x6c, %al /* 'l': "listen" */
    jne 9f

    lea msg_vs_listen, %esi
    mov $(msg_vs_listen_end - msg_vs_listen), %ecx
    call puts
    mov $4, %edi /* packets to look at (our first stream's RST comes too) */
1:  call vs_recv
    cmp $OP_REQUEST, %eax
    je 2f
    test %eax, %eax
    jz 8f
    dec %edi
    jnz 1b
    jmp 8f
2:  mov vs_rx_buf + 16, %eax /* the host's port */
    mov %eax, vs_pport
    mov vs_rx_buf + 20, %eax /* ours */
    mov %eax, vs_lport
    mov $OP_RESPONSE, %eax
    call vs_send0
    call vs_send_msg
    lea msg_vs_accepted, %esi
    mov $(msg_vs_accepted_end - msg_vs_accepted), %ecx
    call puts
    call vs_shutdown
    ret
8:  lea msg_vs_failed, %esi
    mov $(msg_vs_failed_end - msg_vs_failed), %ecx
    call puts
9:  ret

vs_send_msg:
    mov $OP_RW, %eax
    mov $(msg_vs_end - msg_vs), %ecx
    xor %edx, %edx
    jmp vs_send
vs_shutdown:
    mov $OP_SHUTDOWN, %eax
    mov $SHUT_BOTH, %edx
    xor %ecx, %ecx
    jmp vs_send
vs_send0:
    xor %ecx, %ecx
    xor %edx, %edx
    /* vs_send: a packet of op eax, flags edx and ecx bytes of msg_vs on the stream
       vs_lport -> vs_pport; returns once the device has taken it (during the
       notify write by exit, a moment later with an ioeventfd; at most
       VS_WAIT_TSC_HI * 2^32 TSC ticks), as the next packet reuses the buffers. */
vs_send:
    mov vs_lport, %esi
    mov %esi, vs_tx_hdr + 16
    mov vs_pport, %esi
    mov %esi, vs_tx_hdr + 20
    mov %ecx, vs_tx_hdr + 24
    mov %ax, vs_tx_hdr + 30
    mov %edx, vs_tx_hdr + 32
    mov %ecx, vs_tx_desc + 24
    xor %eax, %eax
    test %ecx, %ecx
    setnz %al /* D_NEXT with a payload */
    mov %ax, vs_tx_desc + 12
    incw vs_tx_avail + 2
    movl $1, VM_QUEUE_NOTIFY(%ebx)
    push %edi
    lea vs_tx_used + 2, %esi
    movzwl vs_tx_avail + 2, %ecx
    mov $VS_WAIT_TSC_HI, %edi
    call used_wait
    pop %edi
    ret

    /* vs_recv: offer the receive buffer and wait for the next packet in it; eax =
       its op, or 0 after VS_WAIT_TSC_HI * 2^32 TSC ticks. */
vs_recv:
    incw vs_rx_avail + 2
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    incw vs_rx_seen
    push %edi
    lea vs_rx_used + 2, %esi
    movzwl vs_rx_seen, %ecx
    mov $VS_WAIT_TSC_HI, %edi
    call used_wait
    pop %edi
    je 2f
    xor %eax, %eax
    ret
2:  movzwl vs_rx_buf + 30, %eax
    ret

    /* vs_print: the received payload to COM1, up to SECTOR_PRINT_MAX bytes or a
       newline, then a newline. */
vs_print:
    lea vs_rx_buf + VS_HDR, %esi
    mov vs_rx_buf + 24, %ecx
    cmp $SECTOR_PRINT_MAX, %ecx
    jbe 1f
    mov $SECTOR_PRINT_MAX, %ecx
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
    /* ---- end of vsock ---- */

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
msg_disk: .ascii "lab: disk sector 0: "
msg_disk_end:
msg_disk_failed: .ascii "lab: disk failed\n"
msg_disk_failed_end:
msg_vs: .ascii "bootlab lab vsock\n"
msg_vs_end:
msg_vs_sent: .ascii "lab: vsock sent\n"
msg_vs_sent_end:
msg_vs_got: .ascii "lab: vsock got: "
msg_vs_got_end:
msg_vs_listen: .ascii "lab: vsock listening\n"
msg_vs_listen_end:
msg_vs_accepted: .ascii "lab: vsock accepted\n"
msg_vs_accepted_end:
msg_vs_failed: .ascii "lab: vsock failed\n"
msg_vs_failed_end:

    /* The queues' records for virtio_queue. */
    .balign 4
vq_queue: .long VQ_SIZE, vq_desc, vq_avail, vq_used
vs_rx_queue: .long VS_QSIZE, vs_rx_desc, vs_rx_avail, vs_rx_used
vs_tx_queue: .long VS_QSIZE, vs_tx_desc, vs_tx_avail, vs_tx_used

    /* The virtqueue (descriptor table, available and used rings) and the
       request's header, status byte and data buffer. */
    .section .bss.virtio, "aw", @nobits
    /* The alignments virtio asks for (descriptors 16, available ring 2, used
       ring 4), no more: a page alignment here would page-align the one PT_LOAD
       and move the code in the file. */
    VQ_MEM vq, VQ_SIZE
    .balign 16
vq_hdr: .skip 16
vq_status: .skip 16
vq_data: .skip 512
    /* vsock: the RX and TX queues, the one receive buffer, the packet header, the
       stream's ports and how many packets were received. */
    VQ_MEM vs_rx, VS_QSIZE
    VQ_MEM vs_tx, VS_QSIZE
    .balign 16
vs_rx_buf: .skip VS_RX_LEN
vs_tx_hdr: .skip VS_HDR
    .balign 4
vs_lport: .skip 4
vs_pport: .skip 4
vs_rx_seen: .skip 2

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

/* The virtio-net driver: its own part, using find_virtio, puts and the register
   names of the part above. */
global_asm!(
    r#"
    .code32
    .set NQ_SIZE, 4
    .set ETH_HDR, 14
    .set NET_RX_LEN, NET_HDR + 1514
    .set NET_PRINT_MAX, 64

    .section .text.net, "ax"
    /* lab_net: if a virtio-net device sits in one of the first slots, set up its
       receive (0) and transmit (1) queues, make one receive buffer available,
       send net_frame (our MAC as its source), then wait until a frame of
       ethertype 0x88b5 arrives or the TSC's high half has moved by 2, giving
       other frames' buffer back. */
    .globl lab_net
lab_net:
    mov $VIRTIO_ID_NET, %eax
    call find_virtio
    jz 9f
    call virtio_start
    jz 8f
    xor %eax, %eax
    lea nrx_queue, %esi
    call virtio_queue
    jz 8f
    mov $1, %eax
    lea ntx_queue, %esi
    call virtio_queue
    jz 8f
    movl $(S_ACK_DRIVER | S_FEATURES_OK | S_DRIVER_OK), VM_STATUS(%ebx)
    /* the receive buffer: descriptor 0, available as entry 0 */
    movl $net_rx_buf, nrx_desc
    movl $NET_RX_LEN, nrx_desc + 8
    movl $D_WRITE, nrx_desc + 12
    movw $1, nrx_avail + 2
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    /* the frame, with the device's MAC as its source */
    mov VM_CONFIG(%ebx), %eax
    mov %eax, net_frame_src
    movw VM_CONFIG + 4(%ebx), %ax
    movw %ax, net_frame_src + 4
    movl $net_frame, ntx_desc
    movl $(net_frame_end - net_frame), ntx_desc + 8
    movw $1, ntx_avail + 2
    movl $1, VM_QUEUE_NOTIFY(%ebx)
    /* the frame is sent when the used ring says so */
    lea ntx_used + 2, %esi
    mov $1, %ecx
    mov $2, %edi
    call used_wait
    jne 8f
    lea msg_net_sent, %esi
    mov $(msg_net_sent_end - msg_net_sent), %ecx
    call puts
    /* wait: edi counts the used entries seen, ebp is the TSC deadline's high half */
    xor %edi, %edi
    rdtsc
    lea 2(%edx), %ebp
1:  movzwl nrx_used + 2, %eax
    cmp %eax, %edi
    jne 2f
    rdtsc
    cmp %ebp, %edx
    jb 1b
    lea msg_net_none, %esi
    mov $(msg_net_none_end - msg_net_none), %ecx
    jmp puts
2:  inc %edi
    cmpw $0xb588, net_rx_buf + NET_HDR + 12 /* 0x88b5, big-endian */
    je 3f
    mov %edi, %eax
    and $(NQ_SIZE - 1), %eax
    movw $0, nrx_avail + 4(,%eax,2)
    lea 1(%edi), %eax
    movw %ax, nrx_avail + 2
    movl $0, VM_QUEUE_NOTIFY(%ebx)
    jmp 1b
3:  lea msg_net_got, %esi
    mov $(msg_net_got_end - msg_net_got), %ecx
    call puts
    /* the payload: the used length less both headers, at most NET_PRINT_MAX,
       up to a NUL or newline */
    lea -1(%edi), %eax
    and $(NQ_SIZE - 1), %eax
    mov nrx_used + 8(,%eax,8), %ecx
    sub $(NET_HDR + ETH_HDR), %ecx
    jbe 5f
    cmp $NET_PRINT_MAX, %ecx
    jbe 4f
    mov $NET_PRINT_MAX, %ecx
4:  lea net_rx_buf + NET_HDR + ETH_HDR, %esi
    mov $COM1, %dx
6:  lodsb
    test %al, %al
    jz 5f
    cmp $10, %al
    je 5f
    out %al, %dx
    loop 6b
5:  mov $COM1, %dx
    mov $10, %al
    out %al, %dx
    ret
8:  lea msg_net_failed, %esi
    mov $(msg_net_failed_end - msg_net_failed), %ecx
    call puts
9:  ret

    .section .rodata.net, "a"
msg_net_sent: .ascii "lab: net sent\n"
msg_net_sent_end:
msg_net_got: .ascii "lab: net got: "
msg_net_got_end:
msg_net_none: .ascii "lab: net got nothing\n"
msg_net_none_end:
msg_net_failed: .ascii "lab: net failed\n"
msg_net_failed_end:
    .balign 4
nrx_queue: .long NQ_SIZE, nrx_desc, nrx_avail, nrx_used
ntx_queue: .long NQ_SIZE, ntx_desc, ntx_avail, ntx_used

    /* The frame to send: an empty virtio-net header, the broadcast address, the
       source (filled in), ethertype 0x88b5 and the payload. */
    .section .data.net, "aw"
net_frame:
    .skip NET_HDR
    .byte 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
net_frame_src:
    .skip 6
    .byte 0x88, 0xb5
    .ascii "bootlab lab frame\n"
net_frame_end:

    /* Both queues (NQ_SIZE entries each) and the receive buffer. */
    .section .bss.net, "aw", @nobits
    VQ_MEM nrx, NQ_SIZE
    VQ_MEM ntx, NQ_SIZE
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
