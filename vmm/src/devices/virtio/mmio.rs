//! The virtio-mmio transport (virtio 1.x, "modern" register layout, version 2): the
//! register page a driver finds at the device's MMIO window, feature negotiation,
//! queue set-up through `virtio-queue`, and notifications. A queue notification
//! reaches the device one of two ways (`device_manager::QueueNotify`): through
//! an ioeventfd that KVM writes without leaving the kernel, served by the
//! monitor's event loop ([`MmioTransport::notify_queue`]), or as a register write
//! in the vCPU's MMIO exit, served there (the driver's write returns when the
//! request is done). The interrupt goes out through the device's [`IrqLine`]
//! (KVM_IRQFD with the in-kernel irqchip, an MSI from our IO-APIC with the split
//! one).
//!
//! A driver that breaks the contract (a queue size that is not a power of two or
//! too large, a queue outside guest memory, a chain that loops, an available index
//! that jumps) gets the device marked DEVICE_NEEDS_RESET, a configuration-change
//! interrupt, and no more service until it resets the device; logged at debug
//! level. Nothing a guest writes can panic the monitor or make it allocate.

use super::{DeviceError, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::devices::irq::IrqLine;
use crate::devices::mmio::MmioDevice;
use crate::memory::GuestMemory;
use std::sync::Mutex;
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_mmio as reg;
use virtio_queue::{Queue, QueueT};
use vm_superio::Trigger;

/// "virt", little-endian: the first register of every virtio-mmio device.
pub const MAGIC: u32 = 0x7472_6976;
/// The register layout version of virtio 1.x (1 is the legacy layout).
pub const VERSION: u32 = 2;
/// Our vendor id in the VendorID register: "BLAB".
pub const VENDOR_ID: u32 = 0x4241_4c42;

/// Register offsets, as the match below takes them.
const MAGIC_VALUE: u64 = reg::VIRTIO_MMIO_MAGIC_VALUE as u64;
const VERSION_REG: u64 = reg::VIRTIO_MMIO_VERSION as u64;
const DEVICE_ID: u64 = reg::VIRTIO_MMIO_DEVICE_ID as u64;
const VENDOR_ID_REG: u64 = reg::VIRTIO_MMIO_VENDOR_ID as u64;
const DEVICE_FEATURES: u64 = reg::VIRTIO_MMIO_DEVICE_FEATURES as u64;
const DEVICE_FEATURES_SEL: u64 = reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL as u64;
const DRIVER_FEATURES: u64 = reg::VIRTIO_MMIO_DRIVER_FEATURES as u64;
const DRIVER_FEATURES_SEL: u64 = reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL as u64;
const QUEUE_SEL: u64 = reg::VIRTIO_MMIO_QUEUE_SEL as u64;
const QUEUE_NUM_MAX: u64 = reg::VIRTIO_MMIO_QUEUE_NUM_MAX as u64;
const QUEUE_NUM: u64 = reg::VIRTIO_MMIO_QUEUE_NUM as u64;
const QUEUE_READY: u64 = reg::VIRTIO_MMIO_QUEUE_READY as u64;
/// The QueueNotify register, where an ioeventfd may take the driver's writes.
pub const QUEUE_NOTIFY: u64 = reg::VIRTIO_MMIO_QUEUE_NOTIFY as u64;
const INTERRUPT_STATUS: u64 = reg::VIRTIO_MMIO_INTERRUPT_STATUS as u64;
const INTERRUPT_ACK: u64 = reg::VIRTIO_MMIO_INTERRUPT_ACK as u64;
const STATUS: u64 = reg::VIRTIO_MMIO_STATUS as u64;
const QUEUE_DESC_LOW: u64 = reg::VIRTIO_MMIO_QUEUE_DESC_LOW as u64;
const QUEUE_DESC_HIGH: u64 = reg::VIRTIO_MMIO_QUEUE_DESC_HIGH as u64;
const QUEUE_AVAIL_LOW: u64 = reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW as u64;
const QUEUE_AVAIL_HIGH: u64 = reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH as u64;
const QUEUE_USED_LOW: u64 = reg::VIRTIO_MMIO_QUEUE_USED_LOW as u64;
const QUEUE_USED_HIGH: u64 = reg::VIRTIO_MMIO_QUEUE_USED_HIGH as u64;
const CONFIG_GENERATION: u64 = reg::VIRTIO_MMIO_CONFIG_GENERATION as u64;
/// The device's configuration space starts here.
const CONFIG: u64 = reg::VIRTIO_MMIO_CONFIG as u64;

/// InterruptStatus bits: a used buffer, a configuration change.
const INT_VRING: u32 = reg::VIRTIO_MMIO_INT_VRING;
const INT_CONFIG: u32 = reg::VIRTIO_MMIO_INT_CONFIG;

/// A virtio device on the MMIO bus.
#[derive(Debug)]
pub struct MmioTransport {
    state: Mutex<Transport>,
    irq: IrqLine,
    mem: GuestMemory,
    /// Wakes the monitor's event loop after a queue notification of a device with
    /// host descriptors, so that it polls the device's new set (an RX queue that
    /// had no buffers now has some).
    wake: Option<vmm_sys_util::eventfd::EventFd>,
}

/// The transport's registers and the device behind them.
#[derive(Debug)]
struct Transport {
    device: Box<dyn VirtioDevice>,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    interrupt_status: u32,
    /// Set when the driver broke the contract; cleared by a reset.
    failed: bool,
}

impl MmioTransport {
    /// `device` behind a register page, raising `irq`, reaching `mem`.
    pub fn new(device: Box<dyn VirtioDevice>, irq: IrqLine, mem: GuestMemory) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            .filter_map(|&max| Queue::new(max).ok())
            .collect();
        MmioTransport {
            state: Mutex::new(Transport {
                device,
                queues,
                queue_sel: 0,
                device_features_sel: 0,
                driver_features_sel: 0,
                driver_features: 0,
                status: 0,
                interrupt_status: 0,
                failed: false,
            }),
            irq,
            mem,
            wake: None,
        }
    }

    /// Makes queue notifications of a device with host descriptors write `wake`.
    #[must_use]
    pub fn with_wake(mut self, wake: vmm_sys_util::eventfd::EventFd) -> Self {
        self.wake = Some(wake);
        self
    }

    /// The device status register (for tests and debugging).
    pub fn status(&self) -> u32 {
        self.state.lock().map(|s| s.status).unwrap_or(0)
    }

    /// The host descriptors the device waits on ([`VirtioDevice::host_fds`]).
    /// None while the driver does not have the device running: [`Self::host_event`]
    /// would not serve them, and a level-triggered loop would spin on them.
    pub fn host_fds(&self) -> Vec<std::os::fd::RawFd> {
        self.state
            .lock()
            .ok()
            .filter(|t| !t.failed && t.status & VIRTIO_CONFIG_S_DRIVER_OK != 0)
            .map(|t| t.device.host_fds())
            .unwrap_or_default()
    }

    /// Host-side input on `fd` is ready: the device serves it (if the driver has it
    /// running) and the driver gets an interrupt if a used ring changed.
    pub fn host_event(&self, fd: std::os::fd::RawFd) {
        let Ok(mut t) = self.state.lock() else {
            return;
        };
        if t.failed || t.status & VIRTIO_CONFIG_S_DRIVER_OK == 0 {
            return;
        }
        let Transport { device, queues, .. } = &mut *t;
        match device.process_host_event(fd, queues, &self.mem) {
            Ok(true) => self.interrupt(&mut t, INT_VRING),
            Ok(false) => {}
            Err(e) => self.fail(&mut t, &e),
        }
    }

    /// The driver notified queue `index` through its ioeventfd (KVM_IOEVENTFD on
    /// the QueueNotify register): served as the register write would be.
    pub fn notify_queue(&self, index: u32) {
        if let Ok(mut t) = self.state.lock() {
            self.notify(&mut t, index);
        }
    }

    /// How many queues the device has.
    pub fn queue_count(&self) -> usize {
        self.state.lock().map_or(0, |t| t.queues.len())
    }

    fn interrupt(&self, t: &mut Transport, bits: u32) {
        t.interrupt_status |= bits;
        if let Err(e) = self.irq.trigger() {
            log::debug!("virtio interrupt: {e}");
        }
    }

    /// Marks the device failed and tells the driver.
    fn fail(&self, t: &mut Transport, why: &DeviceError) {
        log::debug!(
            "virtio device type {} needs a reset: {why}",
            t.device.device_type()
        );
        t.failed = true;
        t.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
        if t.status & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            self.interrupt(t, INT_CONFIG);
        }
    }

    fn notify(&self, t: &mut Transport, index: u32) {
        if t.failed || t.status & VIRTIO_CONFIG_S_DRIVER_OK == 0 {
            return;
        }
        let Transport { device, queues, .. } = &mut *t;
        let Some(queue) = queues.get_mut(index as usize) else {
            return;
        };
        if !queue.ready() {
            return;
        }
        match device.process_queue(index as usize, queue, &self.mem) {
            Ok(true) => self.interrupt(t, INT_VRING),
            Ok(false) => {}
            Err(e) => self.fail(t, &e),
        }
        self.wake_host_side(t);
    }

    /// Wakes the event loop if the device has host descriptors to poll now.
    fn wake_host_side(&self, t: &Transport) {
        if let Some(wake) = &self.wake {
            if !t.failed && !t.device.host_fds().is_empty() {
                let _ = wake.write(1);
            }
        }
    }

    fn write_register(&self, t: &mut Transport, offset: u64, v: u32) {
        let sel = t.queue_sel as usize;
        // Queue registers may change only while the queue is not ready.
        let queue = t.queues.get_mut(sel).filter(|q| !q.ready());
        match offset {
            DEVICE_FEATURES_SEL => t.device_features_sel = v,
            DRIVER_FEATURES_SEL => t.driver_features_sel = v,
            DRIVER_FEATURES if t.status & VIRTIO_CONFIG_S_FEATURES_OK == 0 => {
                match t.driver_features_sel {
                    0 => t.driver_features = (t.driver_features & !0xffff_ffff) | u64::from(v),
                    1 => {
                        t.driver_features =
                            (t.driver_features & 0xffff_ffff) | (u64::from(v) << 32);
                    }
                    _ => {}
                }
            }
            QUEUE_SEL => t.queue_sel = v,
            QUEUE_NUM => {
                if let Some(q) = queue {
                    let size = u16::try_from(v).unwrap_or(0);
                    if let Err(e) = q.try_set_size(size) {
                        self.fail(t, &DeviceError::Queue(e));
                    }
                }
            }
            QUEUE_DESC_LOW => queue
                .into_iter()
                .for_each(|q| q.set_desc_table_address(Some(v), None)),
            QUEUE_DESC_HIGH => queue
                .into_iter()
                .for_each(|q| q.set_desc_table_address(None, Some(v))),
            QUEUE_AVAIL_LOW => queue
                .into_iter()
                .for_each(|q| q.set_avail_ring_address(Some(v), None)),
            QUEUE_AVAIL_HIGH => queue
                .into_iter()
                .for_each(|q| q.set_avail_ring_address(None, Some(v))),
            QUEUE_USED_LOW => queue
                .into_iter()
                .for_each(|q| q.set_used_ring_address(Some(v), None)),
            QUEUE_USED_HIGH => queue
                .into_iter()
                .for_each(|q| q.set_used_ring_address(None, Some(v))),
            QUEUE_READY => self.set_queue_ready(t, sel, v == 1),
            QUEUE_NOTIFY => self.notify(t, v),
            INTERRUPT_ACK => t.interrupt_status &= !v,
            STATUS => self.set_status(t, v),
            _ => log::debug!("virtio-mmio: write of {v:#x} at {offset:#x} ignored"),
        }
    }

    fn set_queue_ready(&self, t: &mut Transport, sel: usize, ready: bool) {
        let Some(q) = t.queues.get_mut(sel) else {
            return;
        };
        if !ready {
            q.set_ready(false);
            return;
        }
        q.set_ready(true);
        if !q.is_valid(&self.mem) {
            q.set_ready(false);
            self.fail(
                t,
                &DeviceError::BadRequest("a queue's rings are not in guest memory"),
            );
        }
    }

    fn set_status(&self, t: &mut Transport, v: u32) {
        if v == 0 {
            self.reset(t);
            return;
        }
        let mut v = v;
        // FEATURES_OK only sticks for a subset of what the device offers, with
        // the virtio 1.x interface among them.
        let new = v & !t.status;
        if new & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            let offered = t.device.features();
            let ok = t.driver_features & !offered == 0
                && t.driver_features & (1 << VIRTIO_F_VERSION_1) != 0;
            if !ok {
                v &= !VIRTIO_CONFIG_S_FEATURES_OK;
            }
        }
        if new & VIRTIO_CONFIG_S_DRIVER_OK != 0 && v & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
            v &= !VIRTIO_CONFIG_S_DRIVER_OK;
        }
        // The device's own bit is not the driver's to clear.
        t.status = v | (t.status & VIRTIO_CONFIG_S_NEEDS_RESET);
        if new & v & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            self.wake_host_side(t);
        }
        if v & VIRTIO_CONFIG_S_FAILED != 0 {
            log::debug!(
                "virtio driver gave up on device type {}",
                t.device.device_type()
            );
        }
    }

    fn reset(&self, t: &mut Transport) {
        for q in &mut t.queues {
            q.reset();
        }
        t.queue_sel = 0;
        t.device_features_sel = 0;
        t.driver_features_sel = 0;
        t.driver_features = 0;
        t.status = 0;
        t.interrupt_status = 0;
        t.failed = false;
        t.device.reset();
    }

    fn read_register(t: &Transport, offset: u64) -> u32 {
        let queue = t.queues.get(t.queue_sel as usize);
        match offset {
            MAGIC_VALUE => MAGIC,
            VERSION_REG => VERSION,
            DEVICE_ID => t.device.device_type(),
            VENDOR_ID_REG => VENDOR_ID,
            DEVICE_FEATURES => match t.device_features_sel {
                #[allow(clippy::cast_possible_truncation)] // the low half, on purpose
                0 => t.device.features() as u32,
                #[allow(clippy::cast_possible_truncation)] // the high half
                1 => (t.device.features() >> 32) as u32,
                _ => 0,
            },
            QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size())),
            QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready())),
            INTERRUPT_STATUS => t.interrupt_status,
            STATUS => t.status,
            CONFIG_GENERATION => 0,
            _ => 0,
        }
    }
}

impl MmioDevice for MmioTransport {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let Ok(t) = self.state.lock() else {
            data.fill(0);
            return;
        };
        if offset >= CONFIG {
            t.device.read_config(offset - CONFIG, data);
            return;
        }
        // Registers are 32 bits wide and read whole.
        let v = if data.len() == 4 && offset.is_multiple_of(4) {
            Self::read_register(&t, offset)
        } else {
            0
        };
        let bytes = v.to_le_bytes();
        for (d, b) in data
            .iter_mut()
            .zip(bytes.iter().chain(std::iter::repeat(&0)))
        {
            *d = *b;
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let Ok(mut t) = self.state.lock() else {
            return;
        };
        if offset >= CONFIG {
            // No device here has a writable configuration space.
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            log::debug!(
                "virtio-mmio: {}-byte write at {offset:#x} ignored",
                data.len()
            );
            return;
        };
        if offset.is_multiple_of(4) {
            self.write_register(&mut t, offset, u32::from_le_bytes(bytes));
        }
    }
}
