//! The devices of the microVM, one file each, and the bus that routes port and MMIO
//! accesses to them. Anything no device claims is counted and logged at debug level,
//! never fatal.

pub mod boot_timer;
pub mod console;
pub mod exit_port;
pub mod i8042;
pub mod ioapic;
pub mod irq;
pub mod marker;
pub mod mmio;
pub mod serial;
pub mod virtio;

use crate::error::Error;
use crate::persist::Persist;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use timeline::{EventSource, Timeline};

/// Events stamped by devices, shared between vCPU threads. Only the first event of
/// each name from each source is kept (the one the phase model reads): a guest that
/// repeats a marker in a loop is counted, not stored, so it cannot grow the
/// monitor's memory.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<timeline::Event>>,
    repeats: AtomicU64,
}

impl Recorder {
    /// Records `name` now, from `source`.
    pub fn stamp(&self, name: &str, source: EventSource) {
        let t_ns = timeline::now_ns();
        self.stamp_at(name, t_ns, source);
    }

    /// Records `name` at `t_ns`, unless `source` stamped `name` before.
    pub fn stamp_at(&self, name: &str, t_ns: u64, source: EventSource) {
        if let Ok(mut ev) = self.events.lock() {
            if ev.iter().any(|e| e.name == name && e.source == source) {
                self.repeats.fetch_add(1, Ordering::Relaxed);
                return;
            }
            ev.push(timeline::Event {
                name: name.to_owned(),
                t_ns,
                source,
            });
        }
    }

    /// How many stamps repeated an event already recorded (and were dropped).
    pub fn repeats(&self) -> u64 {
        self.repeats.load(Ordering::Relaxed)
    }

    /// Moves the recorded events into `timeline`.
    pub fn drain_into(&self, timeline: &mut Timeline) {
        if let Ok(mut ev) = self.events.lock() {
            timeline.events.append(&mut ev);
        }
    }
}

/// What a guest access asks of the VM as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Keep running.
    None,
    /// The guest asked for a reset (i8042 pulse): end the VM, status 0.
    Reset,
    /// The guest wrote its exit status to the exit port.
    Exit(u8),
    /// The guest announced the marker the VM is to be saved at.
    Snapshot,
}

/// What a snapshot saves of the devices. The i8042 (reset only), the marker and
/// exit ports and the boot timer hold no state: what they saw is the run's
/// timeline, not the machine's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    pub serial: serial::SerialState,
    /// The monitor's IO-APIC (split irqchip only).
    pub ioapic: Option<ioapic::IoApic>,
}

/// All devices, routed by address: the legacy ports by a static match, the MMIO
/// devices through [`mmio::MmioBus`].
#[derive(Debug)]
pub struct Bus {
    pub serial: Mutex<serial::Serial>,
    /// The MMIO devices (boot timer, IO-APIC of the split irqchip, virtio).
    pub mmio: mmio::MmioBus,
    /// The monitor's IO-APIC when the VM uses the split irqchip.
    pub irqchip: Option<Arc<irq::SplitIrqChip>>,
    /// The virtio devices, whose host side (taps, sockets) the event loop serves.
    pub device_io: crate::device_manager::DeviceIo,
    pub recorder: Arc<Recorder>,
    pub unhandled_pio: AtomicU64,
    pub unhandled_mmio: AtomicU64,
    /// The marker code whose port write asks for a snapshot, 0 for none.
    snapshot_at: AtomicU8,
}

impl Bus {
    /// A bus with the serial console writing to `console` and raising `irq`, the
    /// MMIO devices `mmio`, and the split irqchip's IO-APIC if there is one (which
    /// `mmio` routes to; the bus keeps it for snapshots).
    pub fn new(
        console: console::Console,
        irq: irq::IrqLine,
        mmio: mmio::MmioBus,
        irqchip: Option<Arc<irq::SplitIrqChip>>,
        device_io: crate::device_manager::DeviceIo,
    ) -> Result<Self, Error> {
        let recorder = console.recorder();
        Ok(Bus {
            serial: Mutex::new(serial::Serial::new(irq, console)?),
            mmio,
            irqchip,
            device_io,
            recorder,
            unhandled_pio: AtomicU64::new(0),
            unhandled_mmio: AtomicU64::new(0),
            snapshot_at: AtomicU8::new(0),
        })
    }

    /// Makes the marker with `code` (once) end the run with [`Request::Snapshot`];
    /// 0 disarms it.
    pub fn snapshot_at(&self, code: u8) {
        self.snapshot_at.store(code, Ordering::Release);
    }

    /// A port write.
    pub fn pio_write(&self, port: u16, data: &[u8]) -> Request {
        let value = data.first().copied().unwrap_or(0);
        match port {
            p if serial::claims(p) => {
                if let Ok(mut s) = self.serial.lock() {
                    s.write(p, value);
                }
                Request::None
            }
            marker::PORT => {
                marker::write(&self.recorder, value);
                let armed = self.snapshot_at.load(Ordering::Acquire);
                if armed != 0
                    && armed == value
                    && self
                        .snapshot_at
                        .compare_exchange(armed, 0, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    Request::Snapshot
                } else {
                    Request::None
                }
            }
            exit_port::PORT => Request::Exit(value),
            i8042::COMMAND_PORT if i8042::is_reset(value) => Request::Reset,
            i8042::COMMAND_PORT | i8042::DATA_PORT => Request::None,
            _ => {
                self.unhandled("pio write", port as u64, &self.unhandled_pio);
                Request::None
            }
        }
    }

    /// A port read; fills `data`.
    pub fn pio_read(&self, port: u16, data: &mut [u8]) {
        match port {
            p if serial::claims(p) => {
                let v = self.serial.lock().map(|mut s| s.read(p)).unwrap_or(0xff);
                data.fill(0);
                if let Some(b) = data.first_mut() {
                    *b = v;
                }
            }
            i8042::COMMAND_PORT | i8042::DATA_PORT => data.fill(0),
            _ => {
                self.unhandled("pio read", port as u64, &self.unhandled_pio);
                data.fill(0xff);
            }
        }
    }

    /// An MMIO write.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) {
        match self.mmio.find(addr) {
            Some((device, offset)) => device.write(offset, data),
            None => self.unhandled("mmio write", addr, &self.unhandled_mmio),
        }
    }

    /// An MMIO read; fills `data`.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        match self.mmio.find(addr) {
            Some((device, offset)) => device.read(offset, data),
            None => {
                self.unhandled("mmio read", addr, &self.unhandled_mmio);
                data.fill(0xff);
            }
        }
    }

    fn unhandled(&self, what: &str, addr: u64, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        log::debug!("unhandled {what} at {addr:#x}");
    }
}

impl Persist for Bus {
    type State = DeviceState;
    type Context<'a> = ();

    fn save(&self, _: ()) -> Result<DeviceState, Error> {
        let serial = self
            .serial
            .lock()
            .map_err(|_| Error::Snapshot("the serial port's lock is poisoned".into()))?
            .state();
        Ok(DeviceState {
            serial,
            ioapic: self.irqchip.as_ref().map(|c| c.state()),
        })
    }

    fn restore(&self, state: &DeviceState) -> Result<(), Error> {
        self.serial
            .lock()
            .map_err(|_| Error::Snapshot("the serial port's lock is poisoned".into()))?
            .restore(&state.serial)?;
        match (&self.irqchip, &state.ioapic) {
            (Some(chip), Some(io)) => chip.restore(io),
            (None, None) => {}
            _ => {
                return Err(Error::Snapshot(
                    "the saved devices do not match the irqchip".into(),
                ))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timeline::event;

    /// A bus with an eventfd interrupt line (no VM needed) and no IO-APIC.
    fn bus() -> Bus {
        let rec = Arc::new(Recorder::default());
        let console = console::Console::new(Box::new(std::io::sink()), rec);
        let line =
            irq::IrqLine::Irqfd(vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK).unwrap());
        Bus::new(
            console,
            line,
            mmio::MmioBus::default(),
            None,
            Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn device_state_round_trips_into_a_fresh_bus() {
        let a = bus();
        let base = serial::COM1_BASE;
        // Divisor latch on, a divisor, 8N1, interrupts on, a scratch byte, input.
        for (port, value) in [
            (3, 0x80),
            (0, 0x0c),
            (1, 0x00),
            (3, 0x03),
            (1, 0x0f),
            (7, 0x5a),
        ] {
            a.pio_write(base + port, &[value]);
        }
        a.serial.lock().unwrap().input(b"hi");
        let saved = a.save(()).unwrap();
        assert_eq!(saved.serial.in_buffer, b"hi");
        assert_eq!(saved.serial.scratch, 0x5a);
        let b = bus();
        assert_ne!(b.save(()).unwrap(), saved);
        b.restore(&saved).unwrap();
        assert_eq!(b.save(()).unwrap(), saved);
        // The restored port reads what was queued, in order.
        let mut got = [0u8; 1];
        b.pio_read(base, &mut got);
        assert_eq!(got[0], b'h');
        // A state for the other irqchip model is refused.
        let split = DeviceState {
            ioapic: Some(ioapic::IoApic::default()),
            ..saved
        };
        assert!(b.restore(&split).is_err());
    }

    #[test]
    fn recorder_keeps_the_first_stamp_of_each_name_and_source() {
        let rec = Recorder::default();
        for t in 0..10_000 {
            rec.stamp_at(event::DONE, 100 + t, EventSource::Monitor);
            rec.stamp_at(event::DONE, 200 + t, EventSource::Console);
        }
        rec.stamp_at(event::EXEC, 50, EventSource::Monitor);
        assert_eq!(rec.repeats(), 2 * 9_999);
        let mut t = Timeline::new("t", 0);
        rec.drain_into(&mut t);
        assert_eq!(t.events.len(), 3);
        assert_eq!(t.event_ns(event::DONE), Some(100));
    }
}
