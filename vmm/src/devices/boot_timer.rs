//! Firecracker's boot-timer convention: the guest writes the magic value 123 to the
//! first MMIO slot to say "booted"; the monitor stamps it as the `done` event's
//! cross-check, named `boot-timer`.

use super::mmio::{MmioDevice, Window};
use super::Recorder;
use std::sync::Arc;
use timeline::event;
use timeline::marker::FIRECRACKER_BOOT_TIMER_MAGIC;
use timeline::EventSource;

/// Address of the boot-timer device.
pub const ADDR: u64 = crate::layout::BOOT_TIMER_ADDR;

/// The boot timer's MMIO window: the one byte a guest writes.
pub const WINDOW: Window = Window {
    base: ADDR,
    size: 1,
};

/// The boot timer: stamps the magic write, reads as all ones.
#[derive(Debug)]
pub struct BootTimer(pub Arc<Recorder>);

impl MmioDevice for BootTimer {
    fn read(&self, _: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&self, _: u64, data: &[u8]) {
        if data.first() == Some(&FIRECRACKER_BOOT_TIMER_MAGIC) {
            self.0.stamp(event::BOOT_TIMER, EventSource::Monitor);
        }
    }
}
