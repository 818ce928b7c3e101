//! The monitor's own I/O during a run, on one thread beside the vCPUs and waited
//! on with one epoll: the end of another vCPU, the timeout, console input for the
//! serial port, the snapshot signal, the virtio devices' queue notifications
//! (their ioeventfds) and their host side (taps and sockets, and the eventfd that
//! says their set changed). When one of these ends the run, the loop stops vCPU 0
//! (which runs on the monitor's calling thread) and returns why. Nothing polls:
//! every source is a descriptor, and the loop's own end is an eventfd too.
//!
//! vmm-sys-util's epoll, not nix's: the crate is already the monitor's source of
//! eventfds, and nix is not a dependency of vmm.

use crate::devices::serial::InputDrained;
use crate::devices::Bus;
use crate::error::Error;
use crate::exit::ExitReason;
use std::collections::HashSet;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

/// Where the vCPU threads (1..N) report the end of their loops: the first reason
/// is kept, and every end writes the eventfd the event loop waits on.
#[derive(Debug)]
pub(crate) struct VcpuEnds {
    first: Mutex<Option<ExitReason>>,
    fd: EventFd,
}

impl VcpuEnds {
    pub(crate) fn new() -> Result<Self, Error> {
        Ok(VcpuEnds {
            first: Mutex::new(None),
            fd: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(Error::EventLoop)?,
        })
    }

    /// A vCPU thread's loop ended with `reason` (`None`: it was stopped).
    pub(crate) fn report(&self, reason: Option<ExitReason>) {
        if let (Some(r), Ok(mut first)) = (reason, self.first.lock()) {
            first.get_or_insert(r);
        }
        let _ = self.fd.write(1);
    }

    fn first(&self) -> Option<ExitReason> {
        self.first.lock().ok().and_then(|f| f.clone())
    }
}

/// What the loop waits on, besides its own end.
pub(crate) struct Sources {
    pub(crate) bus: Arc<Bus>,
    /// Ends the run with [`ExitReason::Timeout`].
    pub(crate) deadline: Option<Instant>,
    /// Bytes read here go to the serial port.
    pub(crate) console_input: Option<RawFd>,
    /// The snapshot signal's signalfd: ends the run with [`ExitReason::Snapshotted`].
    pub(crate) snapshot_signal: Option<RawFd>,
    /// The other vCPUs' ends.
    pub(crate) vcpu_ends: Option<Arc<VcpuEnds>>,
}

/// The running loop, held by vCPU 0's thread.
pub(crate) struct EventLoop {
    stop: Arc<EventFd>,
    thread: std::thread::JoinHandle<Option<ExitReason>>,
}

impl EventLoop {
    /// Starts the loop's thread; when the loop ends the run it calls `stop_boot`,
    /// which must return once vCPU 0's loop has ended.
    pub(crate) fn spawn(
        sources: Sources,
        stop_boot: impl FnOnce() + Send + 'static,
    ) -> Result<EventLoop, Error> {
        let stop = Arc::new(
            EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(Error::EventLoop)?,
        );
        let own_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vm-events".into())
            .spawn(move || {
                let end = match Loop::new(sources, &own_stop) {
                    Ok(mut l) => l.run(),
                    Err(e) => Some(ExitReason::RunError(format!("the event loop: {e}"))),
                };
                if end.is_some() {
                    stop_boot();
                }
                end
            })
            .map_err(Error::Thread)?;
        Ok(EventLoop { stop, thread })
    }

    /// vCPU 0's loop has ended: ends the loop (if it has not ended the run itself)
    /// and returns what it saw end the run, if anything.
    pub(crate) fn finish(self) -> Option<ExitReason> {
        let _ = self.stop.write(1);
        self.thread.join().unwrap_or_else(|_| {
            Some(ExitReason::RunError(
                "the event loop's thread panicked".into(),
            ))
        })
    }
}

/// What an epoll event is about (its `data`). A device's host descriptor carries
/// the device's index and the descriptor number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Stop,
    VcpuEnd,
    SnapshotSignal,
    ConsoleInput,
    InputDrained,
    DevicesChanged,
    HostFd { device: usize, fd: RawFd },
    QueueNotify { device: usize, queue: u16 },
}

const HOST_FD_TAG: u64 = 1 << 63;
const QUEUE_TAG: u64 = 1 << 62;

impl Token {
    fn data(self) -> u64 {
        match self {
            Token::Stop => 0,
            Token::VcpuEnd => 1,
            Token::SnapshotSignal => 2,
            Token::ConsoleInput => 3,
            Token::InputDrained => 4,
            Token::DevicesChanged => 5,
            Token::HostFd { device, fd } => {
                HOST_FD_TAG | (device as u64) << 32 | u64::from(fd.unsigned_abs())
            }
            Token::QueueNotify { device, queue } => {
                QUEUE_TAG | (device as u64) << 32 | u64::from(queue)
            }
        }
    }

    fn from_data(data: u64) -> Option<Token> {
        if data & QUEUE_TAG != 0 {
            #[allow(clippy::cast_possible_truncation)] // packed by `data` from these widths
            return Some(Token::QueueNotify {
                device: ((data & !QUEUE_TAG) >> 32) as usize,
                queue: u16::try_from(data & 0xffff_ffff).ok()?,
            });
        }
        if data & HOST_FD_TAG != 0 {
            #[allow(clippy::cast_possible_truncation)] // packed by `data` from these widths
            return Some(Token::HostFd {
                device: ((data & !HOST_FD_TAG) >> 32) as usize,
                fd: i32::try_from(data & 0xffff_ffff).ok()?,
            });
        }
        Some(match data {
            0 => Token::Stop,
            1 => Token::VcpuEnd,
            2 => Token::SnapshotSignal,
            3 => Token::ConsoleInput,
            4 => Token::InputDrained,
            5 => Token::DevicesChanged,
            _ => return None,
        })
    }
}

/// Console input on its way to the serial port.
struct ConsoleInput {
    fd: RawFd,
    /// Bytes read but not yet taken by the serial port (its FIFO was full).
    pending: Vec<u8>,
    /// epoll refuses regular files and /dev/null: such input is always ready.
    pollable: bool,
    /// Waiting for the guest to drain the FIFO (not reading meanwhile).
    paused: bool,
    drained: Arc<InputDrained>,
}

/// Bytes read from console input at a time (the serial FIFO holds 64).
const INPUT_CHUNK: usize = 64;

/// The loop's state on its thread.
struct Loop {
    epoll: Epoll,
    bus: Arc<Bus>,
    deadline: Option<Instant>,
    snapshot_signal: Option<RawFd>,
    vcpu_ends: Option<Arc<VcpuEnds>>,
    input: Option<ConsoleInput>,
    /// The host descriptors registered now, per device.
    host_fds: Vec<HashSet<RawFd>>,
}

impl Loop {
    fn new(s: Sources, stop: &EventFd) -> Result<Loop, Error> {
        let epoll = Epoll::new().map_err(Error::EventLoop)?;
        let mut l = Loop {
            epoll,
            host_fds: vec![HashSet::new(); s.bus.device_io.virtio.len()],
            bus: s.bus,
            deadline: s.deadline,
            snapshot_signal: s.snapshot_signal,
            vcpu_ends: s.vcpu_ends,
            input: None,
        };
        l.add(stop.as_raw_fd(), Token::Stop)?;
        if let Some(ends) = &l.vcpu_ends {
            l.add(ends.fd.as_raw_fd(), Token::VcpuEnd)?;
        }
        if let Some(fd) = l.snapshot_signal {
            l.add(fd, Token::SnapshotSignal)?;
        }
        if let Some(fd) = s.console_input {
            let drained = l.bus.serial.lock().map_err(|_| poisoned())?.input_drained();
            l.add(drained.eventfd().as_raw_fd(), Token::InputDrained)?;
            let pollable = match l.add(fd, Token::ConsoleInput) {
                Ok(()) => true,
                Err(Error::EventLoop(e)) if e.raw_os_error() == Some(libc::EPERM) => false,
                Err(e) => return Err(e),
            };
            l.input = Some(ConsoleInput {
                fd,
                pending: Vec::new(),
                pollable,
                paused: false,
                drained,
            });
        }
        if let Some(wake) = &l.bus.device_io.wake {
            l.add(wake.as_raw_fd(), Token::DevicesChanged)?;
        }
        for q in &l.bus.device_io.queue_events {
            let token = Token::QueueNotify {
                device: q.device,
                queue: q.queue,
            };
            l.add(q.fd.as_raw_fd(), token)?;
        }
        l.refresh_host_fds();
        Ok(l)
    }

    /// Waits for the next events and serves them, until one ends the run
    /// (`Some(reason)`) or the loop is stopped (`None`: vCPU 0 ended the run).
    fn run(&mut self) -> Option<ExitReason> {
        let mut events = vec![EpollEvent::default(); 16];
        loop {
            let n = match self.epoll.wait(self.wait_ms(), &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(ExitReason::RunError(format!("epoll_wait: {e}"))),
            };
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Some(ExitReason::Timeout);
            }
            if self.input_always_ready() {
                self.read_console();
            }
            for ev in &events[..n] {
                let Some(token) = Token::from_data(ev.data()) else {
                    continue;
                };
                match token {
                    Token::Stop => return None,
                    Token::VcpuEnd => {
                        let first = self.vcpu_ends.as_ref().and_then(|e| e.first());
                        return Some(first.unwrap_or(ExitReason::Halted));
                    }
                    Token::SnapshotSignal => {
                        if self.take_signal() {
                            return Some(ExitReason::Snapshotted);
                        }
                    }
                    Token::ConsoleInput => self.read_console(),
                    Token::InputDrained => self.input_drained(),
                    Token::DevicesChanged => {
                        if let Some(w) = &self.bus.device_io.wake {
                            let _ = w.read();
                        }
                        self.refresh_host_fds();
                    }
                    Token::HostFd { device, fd } => {
                        if let Some(t) = self.bus.device_io.virtio.get(device) {
                            t.host_event(fd);
                            self.refresh_device(device);
                        }
                    }
                    Token::QueueNotify { device, queue } => self.serve_queue(device, queue),
                }
            }
        }
    }

    /// How long to wait: until the deadline, not at all for input that is always
    /// ready, else for ever.
    fn wait_ms(&self) -> i32 {
        if self.input_always_ready() {
            return 0;
        }
        self.deadline.map_or(-1, |d| {
            let left = d.saturating_duration_since(Instant::now());
            // Rounded up, so that the wake-up is not before the deadline.
            i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
        })
    }

    fn input_always_ready(&self) -> bool {
        self.input
            .as_ref()
            .is_some_and(|i| !i.pollable && !i.paused)
    }

    fn add(&self, fd: RawFd, token: Token) -> Result<(), Error> {
        self.epoll
            .ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, token.data()),
            )
            .map_err(Error::EventLoop)
    }

    fn remove(&self, fd: RawFd) {
        // A descriptor that was closed has left the epoll set by itself.
        let _ = self
            .epoll
            .ctl(ControlOperation::Delete, fd, EpollEvent::default());
    }

    /// Reads a chunk of console input and hands it to the serial port; what the
    /// FIFO cannot take waits, and input is not read again, until the guest has
    /// drained the FIFO. End of input (or an error) ends reading it for good.
    fn read_console(&mut self) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        let mut buf = [0u8; INPUT_CHUNK];
        // SAFETY: reading into a live buffer of the given length.
        let got = unsafe { libc::read(input.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
            return;
        }
        if got <= 0 {
            let fd = input.fd;
            let pollable = input.pollable;
            self.input = None;
            if pollable {
                self.remove(fd);
            }
            return;
        }
        input.pending.extend_from_slice(&buf[..got.unsigned_abs()]);
        self.feed_serial();
    }

    /// The guest read the serial FIFO empty: hands it what waits, and reads input
    /// again once all of that is taken.
    fn input_drained(&mut self) {
        if let Some(input) = &self.input {
            let _ = input.drained.eventfd().read();
            if input.paused {
                self.feed_serial();
            }
        }
    }

    /// Moves pending input into the serial FIFO, pausing or resuming the reading
    /// of input by whether all of it fit.
    fn feed_serial(&mut self) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        let all_taken = match self.bus.serial.lock() {
            Ok(mut serial) => {
                let taken = serial.input(&input.pending);
                input.pending.drain(..taken);
                if !input.pending.is_empty() {
                    // Armed under the lock: the guest's read that empties the
                    // FIFO comes after this.
                    input.drained.arm();
                }
                input.pending.is_empty()
            }
            Err(_) => return,
        };
        let (fd, pollable, was_paused) = (input.fd, input.pollable, input.paused);
        input.paused = !all_taken;
        if pollable && was_paused && all_taken {
            if let Err(e) = self.add(fd, Token::ConsoleInput) {
                log::warn!("console input ends: {e}");
                self.input = None;
            }
        } else if pollable && !was_paused && !all_taken {
            self.remove(fd);
        }
    }

    /// Reads the snapshot signal's signalfd; whether a signal was there.
    fn take_signal(&self) -> bool {
        let Some(fd) = self.snapshot_signal else {
            return false;
        };
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        // SAFETY: reading into a live buffer of the given length.
        let n = unsafe { libc::read(fd, info.as_mut_ptr().cast(), info.len()) };
        usize::try_from(n) == Ok(info.len())
    }

    /// The driver notified `queue` of `device` (once or many times since the last
    /// read of its ioeventfd): the device serves what the queue holds, and may
    /// now wait on other host descriptors (an RX queue got buffers).
    fn serve_queue(&mut self, device: usize, queue: u16) {
        let io = &self.bus.device_io;
        let event = io
            .queue_events
            .iter()
            .find(|q| q.device == device && q.queue == queue);
        let (Some(event), Some(t)) = (event, io.virtio.get(device)) else {
            return;
        };
        let _ = event.fd.read();
        t.notify_queue(u32::from(queue));
        self.refresh_device(device);
    }

    /// Registers every device's host descriptors as they are now.
    fn refresh_host_fds(&mut self) {
        for device in 0..self.host_fds.len() {
            self.refresh_device(device);
        }
    }

    /// Makes the registered descriptors of `device` those it lists now. Those it
    /// kept are registered again (a modify, or an add where the number now names a
    /// new file after a close), since a device may have closed one and got the same
    /// number back while serving the last event.
    fn refresh_device(&mut self, device: usize) {
        let Some(t) = self.bus.device_io.virtio.get(device) else {
            return;
        };
        let now: HashSet<RawFd> = t.host_fds().into_iter().collect();
        let before = std::mem::take(&mut self.host_fds[device]);
        for &fd in before.difference(&now) {
            self.remove(fd);
        }
        for &fd in &now {
            let event = EpollEvent::new(EventSet::IN, Token::HostFd { device, fd }.data());
            let kept =
                before.contains(&fd) && self.epoll.ctl(ControlOperation::Modify, fd, event).is_ok();
            if !kept {
                if let Err(e) = self.epoll.ctl(ControlOperation::Add, fd, event) {
                    log::debug!("device {device}: host descriptor {fd} not watched: {e}");
                    continue;
                }
            }
            self.host_fds[device].insert(fd);
        }
    }
}

fn poisoned() -> Error {
    Error::EventLoop(std::io::Error::other("the serial port's lock is poisoned"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_epoll_data() {
        for t in [
            Token::Stop,
            Token::VcpuEnd,
            Token::SnapshotSignal,
            Token::ConsoleInput,
            Token::InputDrained,
            Token::DevicesChanged,
            Token::HostFd { device: 0, fd: 0 },
            Token::HostFd {
                device: 18,
                fd: i32::MAX,
            },
            Token::QueueNotify {
                device: 18,
                queue: u16::MAX,
            },
        ] {
            assert_eq!(Token::from_data(t.data()), Some(t), "{t:?}");
        }
        assert_eq!(Token::from_data(99), None);
    }

    /// A bus with a serial port and no VM (an eventfd as its interrupt line).
    fn bus() -> Arc<Bus> {
        use crate::devices::{console::Console, irq::IrqLine, mmio::MmioBus, Recorder};
        let console = Console::new(Box::new(std::io::sink()), Arc::new(Recorder::default()));
        let line = IrqLine::Irqfd(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        Arc::new(Bus::new(console, line, MmioBus::default(), None, Default::default()).unwrap())
    }

    /// Input four times the serial FIFO's size arrives whole and in order while the
    /// "guest" (this test, reading the data port) drains the FIFO: the loop waits
    /// for each drain instead of dropping or spinning.
    #[test]
    fn console_input_larger_than_the_fifo_arrives_whole_as_the_guest_drains_it() {
        use crate::devices::serial::COM1_BASE;
        let bus = bus();
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let sent: Vec<u8> = (0..4 * INPUT_CHUNK)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz"[i % 26])
            .collect();
        // SAFETY: writing a live buffer to the pipe's write end (it fits the pipe).
        let n = unsafe { libc::write(fds[1], sent.as_ptr().cast(), sent.len()) };
        assert_eq!(usize::try_from(n).ok(), Some(sent.len()));
        let sources = Sources {
            bus: bus.clone(),
            deadline: None,
            console_input: Some(fds[0]),
            snapshot_signal: None,
            vcpu_ends: None,
        };
        let event_loop = EventLoop::spawn(sources, || {}).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while got.len() < sent.len() && Instant::now() < deadline {
            let mut lsr = [0u8];
            bus.pio_read(COM1_BASE + 5, &mut lsr);
            if lsr[0] & 1 == 0 {
                std::thread::yield_now();
                continue;
            }
            let mut byte = [0u8];
            bus.pio_read(COM1_BASE, &mut byte);
            got.push(byte[0]);
        }
        assert_eq!(event_loop.finish(), None, "stopped, not ended by itself");
        assert_eq!(got, sent);
        // SAFETY: the two descriptors pipe2 made, closed once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
