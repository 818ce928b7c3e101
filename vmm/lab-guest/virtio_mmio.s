/* The virtio facts both built-in guests (lab.rs, fuzz.rs) use, named once:
   where the monitor's device manager puts its virtio-mmio devices, the
   virtio-mmio register layout (version 2, virtio 1.x section 4.2.2), the device
   status bits, device IDs and descriptor flags, the two device headers' sizes,
   and VQ_MEM, the memory of one split virtqueue. */
    .set VIRTIO, 0xd0001000 /* the first slot; the rest follow it */
    .set VIRTIO_SLOT_SIZE, 0x1000
    .set VIRTIO_SLOTS, 4 /* how many the guests probe */
    .set VIRTIO_MAGIC, 0x74726976 /* "virt" */
    .set VIRTIO_ID_NET, 1
    .set VIRTIO_ID_BLOCK, 2
    .set VIRTIO_ID_VSOCK, 19
    .set VM_VERSION, 0x04
    .set VM_DEVICE_ID, 0x08
    .set VM_DRIVER_FEATURES, 0x20
    .set VM_DRIVER_FEATURES_SEL, 0x24
    .set VM_QUEUE_SEL, 0x30
    .set VM_QUEUE_NUM_MAX, 0x34
    .set VM_QUEUE_NUM, 0x38
    .set VM_QUEUE_READY, 0x44
    .set VM_QUEUE_NOTIFY, 0x50
    .set VM_STATUS, 0x70
    .set VM_QUEUE_DESC, 0x80
    .set VM_QUEUE_AVAIL, 0x90
    .set VM_QUEUE_USED, 0xa0
    .set VM_CONFIG, 0x100 /* the device's configuration space (vsock: the CID; net: the MAC) */
    .set S_ACK_DRIVER, 3 /* ACKNOWLEDGE | DRIVER */
    .set S_DRIVER_OK, 4
    .set S_FEATURES_OK, 8
    .set S_NEEDS_RESET, 0x40 /* DEVICE_NEEDS_RESET */
    .set D_NEXT, 1 /* VIRTQ_DESC_F_NEXT */
    .set D_WRITE, 2 /* VIRTQ_DESC_F_WRITE */
    .set NET_HDR, 12 /* struct virtio_net_hdr_v1 */
    .set VS_HDR, 44 /* struct virtio_vsock_hdr */

/* A split virtqueue of \size entries (in .bss): \name\()_desc (16 bytes an
   entry), \name\()_avail (flags, idx, the ring, used_event) and \name\()_used
   (flags, idx, 8-byte entries, avail_event), each 16-byte aligned. */
    .macro VQ_MEM name, size
    .balign 16
\name\()_desc: .skip 16 * \size
    .balign 16
\name\()_avail: .skip 6 + 2 * \size
    .balign 16
\name\()_used: .skip 6 + 8 * \size
    .endm
