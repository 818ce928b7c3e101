//! The 8250 UART on COM1 (ports 0x3f8-0x3ff, IRQ 4), from vm-superio; its interrupt
//! goes out on an [`IrqLine`]. When console input finds the receive FIFO full, the
//! event loop waits on [`InputDrained`] until the guest has read the FIFO empty.

use super::console::Console;
use super::irq::IrqLine;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// COM1's registers and its receive FIFO (vm-superio's `SerialState`, which has no
/// serde support of its own). Output is never queued (see `console`), so there is
/// no transmit state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialState {
    pub baud_divisor_low: u8,
    pub baud_divisor_high: u8,
    pub interrupt_enable: u8,
    pub interrupt_identification: u8,
    pub line_control: u8,
    pub line_status: u8,
    pub modem_control: u8,
    pub modem_status: u8,
    pub scratch: u8,
    pub in_buffer: Vec<u8>,
}

/// Tells the monitor's event loop that the guest has read COM1's receive FIFO
/// empty, once it asked ([`InputDrained::arm`]): the eventfd is written only then,
/// so a guest reading the data register costs no system call otherwise.
#[derive(Debug)]
pub struct InputDrained {
    fd: EventFd,
    armed: AtomicBool,
}

impl InputDrained {
    fn new() -> Result<Self, Error> {
        Ok(InputDrained {
            fd: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(Error::EventLoop)?,
            armed: AtomicBool::new(false),
        })
    }

    /// Asks for one write of the eventfd the next time the FIFO becomes empty.
    /// Called with the serial port locked, after input found the FIFO full.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }

    /// The eventfd to wait on; read it to clear it.
    pub fn eventfd(&self) -> &EventFd {
        &self.fd
    }
}

impl vm_superio::serial::SerialEvents for InputDrained {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        if self.armed.swap(false, Ordering::AcqRel) {
            let _ = self.fd.write(1);
        }
    }
}

/// COM1.
pub struct Serial(vm_superio::Serial<IrqLine, Arc<InputDrained>, Console>);

impl std::fmt::Debug for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serial").finish_non_exhaustive()
    }
}

impl Serial {
    /// COM1 raising `irq` and writing to `console`.
    pub fn new(irq: IrqLine, console: Console) -> Result<Self, Error> {
        let events = Arc::new(InputDrained::new()?);
        Ok(Serial(vm_superio::Serial::with_events(
            irq, events, console,
        )))
    }

    /// What tells the event loop that the guest has drained the receive FIFO.
    pub fn input_drained(&self) -> Arc<InputDrained> {
        self.0.events().clone()
    }

    /// A write to `port`.
    pub fn write(&mut self, port: u16, value: u8) {
        // The bus routes only COM1's eight ports here.
        let Ok(offset) = u8::try_from(port.wrapping_sub(COM1_BASE)) else {
            return;
        };
        if let Err(e) = self.0.write(offset, value) {
            log::debug!("serial write: {e:?}");
        }
    }

    /// A read of `port`.
    pub fn read(&mut self, port: u16) -> u8 {
        u8::try_from(port.wrapping_sub(COM1_BASE)).map_or(0xff, |offset| self.0.read(offset))
    }

    /// Queues input bytes for the guest; returns how many fit.
    pub fn input(&mut self, bytes: &[u8]) -> usize {
        self.0.enqueue_raw_bytes(bytes).unwrap_or(0)
    }

    /// The registers and the receive FIFO.
    pub fn state(&self) -> SerialState {
        let s = self.0.state();
        SerialState {
            baud_divisor_low: s.baud_divisor_low,
            baud_divisor_high: s.baud_divisor_high,
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.in_buffer,
        }
    }

    /// Loads saved registers and FIFO, keeping this port's interrupt line and console.
    pub fn restore(&mut self, s: &SerialState) -> Result<(), Error> {
        let state = vm_superio::serial::SerialState {
            baud_divisor_low: s.baud_divisor_low,
            baud_divisor_high: s.baud_divisor_high,
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.in_buffer.clone(),
        };
        let line = self
            .0
            .interrupt_evt()
            .try_clone()
            .map_err(Error::SerialLine)?;
        let recorder = self.0.writer().recorder();
        let console = std::mem::replace(
            self.0.writer_mut(),
            Console::new(Box::new(std::io::sink()), recorder),
        );
        let events = self.0.events().clone();
        self.0 = vm_superio::Serial::from_state(&state, line, events, console)
            .map_err(Error::SerialState)?;
        Ok(())
    }
}
