//! The 8250 UART on COM1 (ports 0x3f8-0x3ff, IRQ 4), from vm-superio; its interrupt
//! goes out on an [`IrqLine`].

use super::console::Console;
use super::irq::IrqLine;

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

/// COM1.
pub struct Serial(vm_superio::Serial<IrqLine, vm_superio::serial::NoEvents, Console>);

impl Serial {
    /// COM1 raising `irq` and writing to `console`.
    pub fn new(irq: IrqLine, console: Console) -> Self {
        Serial(vm_superio::Serial::new(irq, console))
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
