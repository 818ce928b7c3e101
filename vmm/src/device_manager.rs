//! Where a machine's devices go: the device plan (a pure value: each device's MMIO
//! window, its interrupt line and its `virtio_mmio.device=` command-line entry),
//! decided before the kernel command line is written, and the manager that makes
//! the interrupt lines for the VM's irqchip model and attaches the devices to the
//! MMIO bus when the machine is built.

use crate::devices::irq::{IrqLine, SplitIrqChip};
use crate::devices::mmio::{AttachError, MmioBus, MmioDevice, Window};
pub use crate::devices::virtio::block::DiskConfig;
use crate::devices::virtio::mmio::{MmioTransport, QUEUE_NOTIFY};
pub use crate::devices::virtio::net::NetConfig;
use crate::devices::virtio::vsock::Vsock;
pub use crate::devices::virtio::vsock::VsockConfig;
use crate::devices::virtio::{block::Block, net::Net, VirtioDevice};
use crate::error::Error;
use crate::layout::{MMIO_DEVICES_END, MMIO_DEVICES_START, MMIO_DEVICE_SIZE};
use crate::memory::GuestMemory;
use crate::tap::Tap;
use kvm_ioctls::VmFd;
use std::sync::Arc;

/// The interrupt lines devices get, first to last: IO-APIC pins above the ISA
/// devices we have (COM1 is 4), up to the IO-APIC's last pin (24 pins, both the
/// in-kernel one and ours). Lines from 16 up exist only through the IO-APIC, so
/// a machine with devices gets the MP table that describes them.
pub const IRQ_FIRST: u32 = 5;
pub const IRQ_LAST: u32 = 23;

/// One MMIO device's place in the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioSlot {
    pub window: Window,
    pub irq: u32,
}

impl MmioSlot {
    /// The kernel command-line entry that tells Linux's virtio-mmio driver about
    /// the device (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES): `SIZE@BASE:IRQ`.
    pub fn cmdline_entry(&self) -> String {
        format!(
            "virtio_mmio.device={}K@{:#x}:{}",
            self.window.size / 1024,
            self.window.base,
            self.irq
        )
    }
}

/// Why no more devices fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("too many devices: {0} at most")]
    TooMany(usize),
}

/// The most MMIO devices a machine can have: one interrupt line each.
#[allow(clippy::cast_possible_truncation)] // 19
pub const MAX_DEVICES: usize = (IRQ_LAST - IRQ_FIRST + 1) as usize;

/// A device the machine is to have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A virtio-blk disk over an image file.
    Block(DiskConfig),
    /// A virtio-vsock device whose host side is a Unix socket.
    Vsock(VsockConfig),
    /// A virtio-net card over a tap.
    Net(NetConfig),
}

/// The MMIO devices of a machine and their places, in the order they were planned
/// (which is the order Linux names them: the first disk is /dev/vda).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicePlan {
    slots: Vec<MmioSlot>,
    specs: Vec<DeviceSpec>,
    /// How the virtio devices take queue notifications.
    notify: QueueNotify,
}

impl DevicePlan {
    /// A plan for `devices`, in order.
    pub fn new(devices: &[DeviceSpec]) -> Result<DevicePlan, PlanError> {
        let mut plan = DevicePlan::default();
        for d in devices {
            plan.add(d.clone())?;
        }
        Ok(plan)
    }

    /// The plan with its virtio devices taking queue notifications as `notify` says.
    #[must_use]
    pub fn with_notify(mut self, notify: QueueNotify) -> Self {
        self.notify = notify;
        self
    }

    /// Places `spec` at the next free window and line.
    pub fn add(&mut self, spec: DeviceSpec) -> Result<MmioSlot, PlanError> {
        let slot = self.allocate()?;
        self.specs.push(spec);
        Ok(slot)
    }

    /// Every planned device with its place.
    pub fn devices(&self) -> impl Iterator<Item = (&MmioSlot, &DeviceSpec)> {
        self.slots.iter().zip(&self.specs)
    }

    /// The next free window and line.
    fn allocate(&mut self) -> Result<MmioSlot, PlanError> {
        let n = self.slots.len();
        let base = u64::try_from(n)
            .ok()
            .and_then(|i| i.checked_mul(MMIO_DEVICE_SIZE))
            .and_then(|off| off.checked_add(MMIO_DEVICES_START))
            .filter(|b| b + MMIO_DEVICE_SIZE <= MMIO_DEVICES_END);
        let irq = u32::try_from(n)
            .ok()
            .map(|i| IRQ_FIRST + i)
            .filter(|irq| *irq <= IRQ_LAST);
        let (Some(base), Some(irq)) = (base, irq) else {
            return Err(PlanError::TooMany(MAX_DEVICES));
        };
        let slot = MmioSlot {
            window: Window {
                base,
                size: MMIO_DEVICE_SIZE,
            },
            irq,
        };
        self.slots.push(slot);
        Ok(slot)
    }

    /// The planned slots.
    pub fn slots(&self) -> &[MmioSlot] {
        &self.slots
    }

    /// Whether no device is planned.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// `cmdline` with every device's entry appended.
    pub fn cmdline(&self, cmdline: &str) -> String {
        let mut out = cmdline.trim_end().to_owned();
        for s in &self.slots {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&s.cmdline_entry());
        }
        out
    }

    /// The highest interrupt line a device uses, if any.
    pub fn highest_irq(&self) -> Option<u32> {
        self.slots.iter().map(|s| s.irq).max()
    }

    /// Makes every planned device with its host side (an image file, a tap), not
    /// yet on a bus: done before the VM exists, so that what the host cannot give
    /// fails the run before any KVM work.
    pub fn open(&self) -> Result<OpenDevices, Error> {
        let mut open = OpenDevices {
            slots: self.slots.clone(),
            notify: self.notify,
            ..OpenDevices::default()
        };
        for (index, spec) in self.specs.iter().enumerate() {
            let device: Box<dyn VirtioDevice> = match spec {
                DeviceSpec::Block(disk) => {
                    let (file, len) = disk.open().map_err(|source| Error::Disk {
                        path: disk.path.clone(),
                        source,
                    })?;
                    let id = format!("bootlab-disk{index}");
                    Box::new(Block::new(file, len, disk.read_only, &id))
                }
                DeviceSpec::Net(net) => {
                    let tap = Tap::open(net.tap.as_deref())?;
                    open.taps.push(tap.name().to_owned());
                    Box::new(Net::new(tap.into(), net.mac))
                }
                DeviceSpec::Vsock(config) => {
                    Box::new(Vsock::new(config).map_err(|e| Error::Device(e.to_string()))?)
                }
            };
            open.devices.push(device);
        }
        Ok(open)
    }
}

/// The devices of a plan, made ([`DevicePlan::open`]) and waiting to be attached.
#[derive(Debug, Default)]
pub struct OpenDevices {
    slots: Vec<MmioSlot>,
    notify: QueueNotify,
    devices: Vec<Box<dyn VirtioDevice>>,
    taps: Vec<String>,
}

impl OpenDevices {
    /// The names of the taps the network cards use, in plan order.
    pub fn taps(&self) -> &[String] {
        &self.taps
    }
}

/// How a driver's queue notification (its write of the queue's index to the
/// virtio-mmio QueueNotify register) reaches the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueNotify {
    /// An eventfd per queue registered with KVM_IOEVENTFD for that register and
    /// the queue's index: the vCPU does not exit to the monitor, whose event loop
    /// serves the queue. A write that matches no queue still exits.
    Ioeventfd,
    /// The write exits to the monitor, which serves the queue in the vCPU's exit.
    #[default]
    Exit,
}

/// A queue's ioeventfd, for the event loop.
#[derive(Debug)]
pub struct QueueEvent {
    /// The device's index in [`DeviceIo::virtio`].
    pub device: usize,
    pub queue: u16,
    pub fd: vmm_sys_util::eventfd::EventFd,
}

/// Makes interrupt lines for the VM's irqchip and attaches devices to the MMIO
/// bus while the machine is built.
#[derive(Debug)]
pub struct DeviceManager<'a> {
    vm: &'a VmFd,
    split: Option<Arc<SplitIrqChip>>,
    mmio: MmioBus,
    /// The virtio devices, for the event loop that serves their host side.
    virtio: Vec<Arc<MmioTransport>>,
    /// What their queue notifications write to wake that loop (made with the
    /// first virtio device: a machine without any has no such loop).
    io_wake: Option<vmm_sys_util::eventfd::EventFd>,
    queue_events: Vec<QueueEvent>,
}

impl<'a> DeviceManager<'a> {
    /// A manager for `vm`, whose IO-APIC is `split` with the split irqchip, or
    /// KVM's own without it.
    pub fn new(vm: &'a VmFd, split: Option<Arc<SplitIrqChip>>) -> Self {
        DeviceManager {
            vm,
            split,
            mmio: MmioBus::default(),
            virtio: Vec::new(),
            io_wake: None,
            queue_events: Vec::new(),
        }
    }

    /// Interrupt line `irq`: a pin of our IO-APIC, or an eventfd registered with
    /// KVM_IRQFD for the in-kernel irqchip.
    pub fn irq_line(&self, irq: u32) -> Result<IrqLine, Error> {
        match &self.split {
            Some(chip) => Ok(IrqLine::IoApicPin(chip.clone(), irq as usize)),
            None => {
                let fd = vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK)
                    .map_err(Error::Thread)?;
                self.vm
                    .register_irqfd(&fd, irq)
                    .map_err(Error::kvm("KVM_IRQFD"))?;
                Ok(IrqLine::Irqfd(fd))
            }
        }
    }

    /// Attaches `device` at `window`.
    pub fn attach(&mut self, window: Window, device: Arc<dyn MmioDevice>) -> Result<(), Error> {
        self.mmio
            .attach(window, device)
            .map_err(|e: AttachError| Error::Device(e.to_string()))
    }

    /// Makes the devices of `plan` (opening their files and taps) and attaches
    /// each at its place, raising its line, reaching `mem`.
    pub fn attach_plan(&mut self, plan: &DevicePlan, mem: &GuestMemory) -> Result<(), Error> {
        self.attach_devices(plan.open()?, mem)
    }

    /// Attaches the opened devices, each at its place, raising its line, reaching `mem`.
    pub fn attach_devices(&mut self, open: OpenDevices, mem: &GuestMemory) -> Result<(), Error> {
        for (slot, device) in open.slots.iter().zip(open.devices) {
            let irq = self.irq_line(slot.irq)?;
            let wake = match &self.io_wake {
                Some(w) => w,
                None => self.io_wake.insert(
                    vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
                        .map_err(Error::Thread)?,
                ),
            }
            .try_clone()
            .map_err(Error::Thread)?;
            let transport = Arc::new(MmioTransport::new(device, irq, mem.clone()).with_wake(wake));
            self.attach(slot.window, transport.clone())?;
            if open.notify == QueueNotify::Ioeventfd {
                self.register_queue_events(slot.window.base, transport.queue_count())?;
            }
            self.virtio.push(transport);
        }
        Ok(())
    }

    /// An ioeventfd for each of the `queues` queues of the virtio device at `base`,
    /// the next one to be pushed to `self.virtio`.
    fn register_queue_events(&mut self, base: u64, queues: usize) -> Result<(), Error> {
        let device = self.virtio.len();
        let at = kvm_ioctls::IoEventAddress::Mmio(base + QUEUE_NOTIFY);
        for queue in (0..queues).filter_map(|q| u16::try_from(q).ok()) {
            let fd = vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
                .map_err(Error::EventLoop)?;
            // The driver writes the index as 32 bits: a u32 datamatch makes KVM
            // match 4-byte writes of exactly that value.
            self.vm
                .register_ioevent(&fd, &at, u32::from(queue))
                .map_err(Error::kvm("KVM_IOEVENTFD"))?;
            self.queue_events.push(QueueEvent { device, queue, fd });
        }
        Ok(())
    }

    /// The split irqchip, if the VM has one.
    pub fn split(&self) -> Option<&Arc<SplitIrqChip>> {
        self.split.as_ref()
    }

    /// The MMIO bus with every attached device, and the virtio devices with the
    /// descriptor that wakes their event loop.
    pub fn into_parts(self) -> (MmioBus, DeviceIo) {
        (
            self.mmio,
            DeviceIo {
                virtio: self.virtio,
                wake: self.io_wake,
                queue_events: self.queue_events,
            },
        )
    }
}

/// The virtio devices of a machine, for the loop that serves their host side
/// (input on a tap or a socket), and the eventfd their queue notifications write
/// when the set of host descriptors to poll may have changed.
#[derive(Debug, Default)]
pub struct DeviceIo {
    pub virtio: Vec<Arc<MmioTransport>>,
    /// `None` when there is no virtio device.
    pub wake: Option<vmm_sys_util::eventfd::EventFd>,
    /// The queues' ioeventfds ([`QueueNotify::Ioeventfd`]).
    pub queue_events: Vec<QueueEvent>,
}

impl DeviceIo {
    /// Every host descriptor the devices wait on now, with the device's index.
    pub fn host_fds(&self) -> Vec<(usize, std::os::fd::RawFd)> {
        self.virtio
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.host_fds().into_iter().map(move |fd| (i, fd)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str) -> DeviceSpec {
        DeviceSpec::Block(DiskConfig {
            path: name.into(),
            read_only: true,
        })
    }

    #[test]
    fn slots_are_pages_after_the_boot_timer_with_lines_from_five() {
        let plan = DevicePlan::new(&[disk("a"), disk("b")]).unwrap();
        let (a, b) = (plan.slots()[0], plan.slots()[1]);
        assert_eq!(plan.devices().nth(1).map(|(_, d)| d), Some(&disk("b")));
        assert_eq!(a.window.base, crate::layout::BOOT_TIMER_ADDR + 0x1000);
        assert_eq!(b.window.base, a.window.base + 0x1000);
        assert_eq!((a.irq, b.irq), (5, 6));
        assert_eq!(a.cmdline_entry(), "virtio_mmio.device=4K@0xd0001000:5");
        assert_eq!(
            plan.cmdline("console=ttyS0 "),
            "console=ttyS0 virtio_mmio.device=4K@0xd0001000:5 virtio_mmio.device=4K@0xd0002000:6"
        );
        assert_eq!(plan.highest_irq(), Some(6));
    }

    #[test]
    fn no_plan_leaves_the_command_line_as_it_was() {
        let plan = DevicePlan::default();
        assert_eq!(plan.cmdline("a b"), "a b");
        assert_eq!(plan.highest_irq(), None);
    }

    #[test]
    fn the_plan_ends_at_the_last_line_and_below_the_io_apic() {
        let mut plan = DevicePlan::default();
        for _ in 0..MAX_DEVICES {
            let s = plan.add(disk("d")).unwrap();
            assert!(s.irq <= IRQ_LAST && s.irq != crate::devices::serial::COM1_IRQ);
            assert!(s.window.base + s.window.size <= MMIO_DEVICES_END);
        }
        assert_eq!(plan.add(disk("d")), Err(PlanError::TooMany(MAX_DEVICES)));
        assert_eq!(plan.devices().count(), MAX_DEVICES);
    }
}
