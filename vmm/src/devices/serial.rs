//! The 8250 UART on COM1 (ports 0x3f8-0x3ff, IRQ 4), from vm-superio; its interrupt
//! is an eventfd registered with the in-kernel irqchip.

use super::console::Console;
use vm_superio::Trigger;
use vmm_sys_util::eventfd::EventFd;

/// First port of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// Number of COM1 registers.
pub const COM1_LEN: u16 = 8;
/// COM1's legacy IRQ line.
pub const COM1_IRQ: u32 = 4;

/// Whether `port` is one of COM1's registers.
pub fn claims(port: u16) -> bool {
    (COM1_BASE..COM1_BASE + COM1_LEN).contains(&port)
}

/// An eventfd as vm-superio's interrupt trigger.
pub struct IrqTrigger(EventFd);

impl Trigger for IrqTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// COM1.
pub struct Serial(vm_superio::Serial<IrqTrigger, vm_superio::serial::NoEvents, Console>);

impl Serial {
    /// COM1 raising `irq` and writing to `console`.
    pub fn new(irq: EventFd, console: Console) -> Self {
        Serial(vm_superio::Serial::new(IrqTrigger(irq), console))
    }

    /// A write to `port`.
    pub fn write(&mut self, port: u16, value: u8) {
        if let Err(e) = self.0.write((port - COM1_BASE) as u8, value) {
            log::debug!("serial write: {e:?}");
        }
    }

    /// A read of `port`.
    pub fn read(&mut self, port: u16) -> u8 {
        self.0.read((port - COM1_BASE) as u8)
    }

    /// Queues input bytes for the guest; returns how many fit.
    pub fn input(&mut self, bytes: &[u8]) -> usize {
        self.0.enqueue_raw_bytes(bytes).unwrap_or(0)
    }
}
