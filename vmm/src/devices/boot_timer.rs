//! Firecracker's boot-timer convention: the guest writes the magic value 123 to the
//! first MMIO slot to say "booted"; the monitor stamps it as the `done` event's
//! cross-check, named `boot-timer`.

use super::Recorder;
use timeline::event;
use timeline::marker::FIRECRACKER_BOOT_TIMER_MAGIC;
use timeline::EventSource;

/// Address of the boot-timer device.
pub const ADDR: u64 = crate::layout::BOOT_TIMER_ADDR;

/// Handles a write to the boot timer.
pub fn write(recorder: &Recorder, data: &[u8]) {
    if data.first() == Some(&FIRECRACKER_BOOT_TIMER_MAGIC) {
        recorder.stamp(event::BOOT_TIMER, EventSource::Monitor);
    }
}
