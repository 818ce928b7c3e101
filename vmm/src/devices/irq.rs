//! How a device raises its interrupt line. With KVM's full in-kernel irqchip the
//! line is an eventfd registered with KVM_IRQFD; with the split irqchip it is a pin
//! of the monitor's IO-APIC, which turns the edge into an MSI for KVM_SIGNAL_MSI.

use super::ioapic::{IoApic, Msi};
use super::mmio::{MmioDevice, Window};
use kvm_bindings::kvm_msi;
use kvm_ioctls::VmFd;
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::EventFd;

/// The interrupt controller a VM was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IrqChipKind {
    /// KVM's in-kernel PIC, IO-APIC and PIT (KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2).
    Kernel,
    /// Local APICs in the kernel, the IO-APIC in the monitor, no PIC and no PIT
    /// (KVM_CAP_SPLIT_IRQCHIP). Closing such a VM is much cheaper: the in-kernel
    /// PIC/IO-APIC/PIT teardown waits for several SRCU grace periods.
    Split,
}

/// The monitor side of a split irqchip: its IO-APIC and the VM to signal.
#[derive(Debug)]
pub struct SplitIrqChip {
    ioapic: Mutex<IoApic>,
    vm: Arc<VmFd>,
}

impl SplitIrqChip {
    /// An IO-APIC in its reset state delivering into `vm`.
    pub fn new(vm: Arc<VmFd>) -> Self {
        SplitIrqChip {
            ioapic: Mutex::new(IoApic::default()),
            vm,
        }
    }

    /// An edge on `pin`.
    pub fn edge(&self, pin: usize) -> std::io::Result<()> {
        let msi = self.ioapic.lock().ok().and_then(|mut io| io.edge(pin));
        msi.map_or(Ok(()), |m| self.signal(m))
    }

    /// The IO-APIC's registers.
    pub fn state(&self) -> IoApic {
        self.ioapic.lock().map(|io| io.clone()).unwrap_or_default()
    }

    /// Loads saved IO-APIC registers.
    pub fn restore(&self, state: &IoApic) {
        if let Ok(mut io) = self.ioapic.lock() {
            *io = state.clone();
        }
    }

    fn signal(&self, m: Msi) -> std::io::Result<()> {
        let msi = kvm_msi {
            address_lo: m.address,
            data: m.data,
            ..Default::default()
        };
        // 0 means the interrupt was blocked by the guest (e.g. its APIC is
        // disabled), which is the guest's business, not an error.
        self.vm
            .signal_msi(msi)
            .map(|_| ())
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }
}

/// The IO-APIC's register window on the MMIO bus.
pub const IOAPIC_WINDOW: Window = Window {
    base: super::ioapic::BASE,
    size: super::ioapic::SIZE,
};

impl MmioDevice for SplitIrqChip {
    fn read(&self, offset: u64, data: &mut [u8]) {
        if let Ok(io) = self.ioapic.lock() {
            io.read(IOAPIC_WINDOW.base + offset, data);
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let due = match self.ioapic.lock() {
            Ok(mut io) => io.write(IOAPIC_WINDOW.base + offset, data),
            Err(_) => return,
        };
        for m in due {
            if let Err(e) = self.signal(m) {
                log::debug!("KVM_SIGNAL_MSI: {e}");
            }
        }
    }
}

/// One device interrupt line.
#[derive(Debug)]
pub enum IrqLine {
    /// An eventfd registered with KVM_IRQFD.
    Irqfd(EventFd),
    /// A pin of the monitor's IO-APIC.
    IoApicPin(Arc<SplitIrqChip>, usize),
}

impl IrqLine {
    /// A second handle on the same line.
    pub fn try_clone(&self) -> std::io::Result<IrqLine> {
        Ok(match self {
            IrqLine::Irqfd(fd) => IrqLine::Irqfd(fd.try_clone()?),
            IrqLine::IoApicPin(chip, pin) => IrqLine::IoApicPin(chip.clone(), *pin),
        })
    }
}

impl vm_superio::Trigger for IrqLine {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        match self {
            IrqLine::Irqfd(fd) => fd.write(1),
            IrqLine::IoApicPin(chip, pin) => chip.edge(*pin),
        }
    }
}
