//! The MMIO side of the bus: devices behind a trait, each owning a window of
//! guest-physical addresses. The set is fixed when the machine is built (the device
//! manager attaches them), so lookups need no lock: a sorted list searched by
//! address. Legacy port devices stay in the static match of [`super::Bus`].

use std::fmt::Debug;
use std::sync::Arc;

/// A device the guest reaches through a window of MMIO addresses. Accesses come
/// from vCPU threads, so a device guards its own state.
pub trait MmioDevice: Debug + Send + Sync {
    /// A guest read of `data.len()` bytes at `offset` into the device's window.
    fn read(&self, offset: u64, data: &mut [u8]);
    /// A guest write of `data` at `offset` into the device's window.
    fn write(&self, offset: u64, data: &[u8]);
}

/// A window of guest-physical addresses, `[base, base + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub base: u64,
    pub size: u64,
}

impl Window {
    /// The offset of `addr` in the window, if it falls inside.
    fn offset(&self, addr: u64) -> Option<u64> {
        addr.checked_sub(self.base).filter(|o| *o < self.size)
    }

    fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
}

/// Why a device cannot be attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("the MMIO window {0:#x}+{1:#x} is empty or overlaps another device")]
    Overlap(u64, u64),
}

/// The MMIO devices of a machine, sorted by address.
#[derive(Debug, Default)]
pub struct MmioBus {
    devices: Vec<(Window, Arc<dyn MmioDevice>)>,
}

impl MmioBus {
    /// Adds `device` at `window`, which must be non-empty and overlap no other.
    pub fn attach(
        &mut self,
        window: Window,
        device: Arc<dyn MmioDevice>,
    ) -> Result<(), AttachError> {
        let at = self.devices.partition_point(|(w, _)| w.base < window.base);
        let clashes_before = at
            .checked_sub(1)
            .and_then(|i| self.devices.get(i))
            .is_some_and(|(w, _)| w.end() > window.base);
        let clashes_after = self
            .devices
            .get(at)
            .is_some_and(|(w, _)| w.base < window.end());
        if window.size == 0 || clashes_before || clashes_after {
            return Err(AttachError::Overlap(window.base, window.size));
        }
        self.devices.insert(at, (window, device));
        Ok(())
    }

    /// The device whose window holds `addr`, and the offset of `addr` in it.
    pub fn find(&self, addr: u64) -> Option<(&dyn MmioDevice, u64)> {
        let at = self.devices.partition_point(|(w, _)| w.base <= addr);
        let (w, d) = self.devices.get(at.checked_sub(1)?)?;
        w.offset(addr).map(|o| (d.as_ref(), o))
    }

    /// How many devices are attached.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is attached.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records the offsets it sees.
    #[derive(Debug, Default)]
    struct Probe(Mutex<Vec<u64>>);

    impl MmioDevice for Probe {
        fn read(&self, offset: u64, data: &mut [u8]) {
            self.0.lock().unwrap().push(offset);
            data.fill(0x5a);
        }
        fn write(&self, offset: u64, _: &[u8]) {
            self.0.lock().unwrap().push(offset);
        }
    }

    #[test]
    fn accesses_reach_the_device_of_their_window_at_its_offset() {
        let mut bus = MmioBus::default();
        let (a, b) = (Arc::new(Probe::default()), Arc::new(Probe::default()));
        bus.attach(
            Window {
                base: 0x2000,
                size: 0x1000,
            },
            b.clone(),
        )
        .unwrap();
        bus.attach(
            Window {
                base: 0x1000,
                size: 0x100,
            },
            a.clone(),
        )
        .unwrap();
        for addr in [
            0x0fff,
            0x1000,
            0x10ff,
            0x1100,
            0x2000,
            0x2fff,
            0x3000,
            u64::MAX,
        ] {
            if let Some((dev, off)) = bus.find(addr) {
                dev.write(off, &[1]);
            }
        }
        assert_eq!(*a.0.lock().unwrap(), [0, 0xff]);
        assert_eq!(*b.0.lock().unwrap(), [0, 0xfff]);
        let mut got = [0u8; 4];
        bus.find(0x2004).unwrap().0.read(4, &mut got);
        assert_eq!(got, [0x5a; 4]);
    }

    #[test]
    fn overlapping_or_empty_windows_are_refused() {
        let mut bus = MmioBus::default();
        let p = Arc::new(Probe::default());
        bus.attach(
            Window {
                base: 0x1000,
                size: 0x1000,
            },
            p.clone(),
        )
        .unwrap();
        for (base, size) in [(0x1800, 0x10), (0x0800, 0x1000), (0x1fff, 1), (0x3000, 0)] {
            assert_eq!(
                bus.attach(Window { base, size }, p.clone()),
                Err(AttachError::Overlap(base, size))
            );
        }
        bus.attach(
            Window {
                base: 0x2000,
                size: 1,
            },
            p,
        )
        .unwrap();
        assert_eq!(bus.len(), 2);
    }
}
