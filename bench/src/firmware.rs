//! What a VM's firmware output means for the phase model: which line of a firmware
//! log starts the `firmware` phase, which hands over to the kernel, and which
//! serial-console line is the kernel's first. The logs reach the harness as line
//! streams beside the console (`exec::SideLog`), stamped on arrival like markers.

use timeline::{event, step};

/// A firmware log and how its lines are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareLog {
    /// SeaBIOS's debug console (QEMU `isa-debugcon` at I/O port [`DEBUGCON_PORT`]):
    /// its first line (`SeaBIOS (version ...)`, printed first thing) starts the
    /// firmware; `Booting from ...` is stamped as a step (`firmware.boot-entry`), not
    /// the hand-over: with `-kernel` it jumps to QEMU's option ROM, which still has to
    /// load the kernel through fw_cfg.
    SeaBiosDebugcon,
    /// QEMU's trace of the guest's fw_cfg selections (`-trace fw_cfg_select -D
    /// FILE`), for firmware without a log of its own (qboot) and for the hand-over of
    /// every firmware that boots `-kernel`: the first selection (qboot: probing the
    /// fw_cfg signature, right after its hardware, PCI and IDT set-up) starts the
    /// firmware; the selection of `kernel_entry`, read right before the jump into the
    /// loaded kernel (by qboot itself, or by QEMU's option ROM after SeaBIOS), hands
    /// over.
    FwCfgTrace,
}

/// The debug console's I/O port in SeaBIOS and OVMF builds for QEMU (QEMU's own
/// `isa-debugcon` default is 0xe9).
pub const DEBUGCON_PORT: u16 = 0x402;

impl FirmwareLog {
    /// The event a line of this log stands for, if any. Only the first of each event
    /// counts (the harness keeps the first stamp).
    pub fn event(self, line: &str) -> Option<&'static str> {
        let line = line.trim_end_matches(['\r', '\n']);
        match self {
            FirmwareLog::SeaBiosDebugcon => {
                if line.trim_start().starts_with("Booting from ") {
                    Some(step::FIRMWARE_BOOT_ENTRY)
                } else {
                    (!line.trim().is_empty()).then_some(event::FIRMWARE_START)
                }
            }
            FirmwareLog::FwCfgTrace => {
                if !line.starts_with("fw_cfg_select ") {
                    None
                } else if line.contains("'kernel_entry'") {
                    Some(event::FIRMWARE_HANDOVER)
                } else {
                    Some(event::FIRMWARE_START)
                }
            }
        }
    }
}

/// Whether a serial-console line is the kernel's EFI stub speaking: OVMF starts the
/// kernel (QEMU's `-kernel`, loaded through fw_cfg at DXE) as an EFI application, and
/// the stub's first line, `EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID
/// device path`, is the first output of the kernel's own code. OVMF prints nothing of
/// its own there (no `BdsDxe:` boot-option lines on a `-kernel` boot); its console's
/// screen-control escapes come before the text on the same line.
pub fn is_efi_stub_line(line: &str) -> bool {
    line.contains("EFI stub: ")
}

/// Whether a serial-console line holds a kernel printk line (`[    0.000000] ...`,
/// the kernel's printk time stamp). Firmware that also prints on the serial port
/// (SeaBIOS with `-nographic`) leaves its text on the same line before it, e.g.
/// `Booting from ROM..[    0.000000] Linux version ...`, so the stamp is looked for
/// anywhere in the line.
pub fn is_kernel_line(line: &str) -> bool {
    line.match_indices('[').any(|(i, _)| {
        let rest = line[i + 1..].trim_start_matches(' ');
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Some(frac) = rest[digits..].strip_prefix('.') else {
            return false;
        };
        let frac_digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && frac_digits > 0 && frac[frac_digits..].starts_with(']')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real output captured on this project's host (tests/fixtures/FIRMWARE.md).
    const SEABIOS: &str = include_str!("../tests/fixtures/seabios-debugcon.txt");
    const SEABIOS_SERIAL: &str = include_str!("../tests/fixtures/seabios-serial.txt");
    const SEABIOS_TRACE: &str = include_str!("../tests/fixtures/seabios-fw_cfg-trace.txt");
    const QBOOT_TRACE: &str = include_str!("../tests/fixtures/qboot-fw_cfg-trace.txt");
    const OVMF_TRACE: &str = include_str!("../tests/fixtures/ovmf-fw_cfg-trace.txt");
    const OVMF_SERIAL: &str = include_str!("../tests/fixtures/ovmf-serial.txt");

    /// The first line of each event a log names: (event, line number from 1).
    fn first_events(log: FirmwareLog, text: &str) -> Vec<(&'static str, usize)> {
        let mut out: Vec<(&'static str, usize)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if let Some(ev) = log.event(line) {
                if !out.iter().any(|(e, _)| *e == ev) {
                    out.push((ev, i + 1));
                }
            }
        }
        out
    }

    #[test]
    fn seabios_starts_at_its_first_debug_line_and_marks_its_boot_entry() {
        let lines: Vec<&str> = SEABIOS.lines().collect();
        let ev = first_events(FirmwareLog::SeaBiosDebugcon, SEABIOS);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0], (event::FIRMWARE_START, 1));
        assert!(lines[0].starts_with("SeaBIOS (version 1.16"));
        let (name, at) = ev[1];
        assert_eq!(name, step::FIRMWARE_BOOT_ENTRY);
        assert_eq!(lines[at - 1], "Booting from ROM...");
        // The POST's work comes before it.
        for work in ["PCI device probing", "Scan for option roms", "e820 map"] {
            assert!(lines[..at - 1].iter().any(|l| l.contains(work)), "{work}");
        }
    }

    #[test]
    fn after_seabios_the_option_rom_hands_over_at_kernel_entry() {
        let lines: Vec<&str> = SEABIOS_TRACE.lines().collect();
        let ev = first_events(FirmwareLog::FwCfgTrace, SEABIOS_TRACE);
        assert_eq!(
            ev.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            [event::FIRMWARE_START, event::FIRMWARE_HANDOVER]
        );
        assert!(lines[ev[0].1 - 1].contains("'signature'"));
        let h = ev[1].1;
        assert!(lines[h - 1].contains("'kernel_entry'"));
        // The option ROM read the command line and the initrd's size before it.
        assert!(lines[..h - 1].iter().any(|l| l.contains("'cmdline_data'")));
    }

    #[test]
    fn qboot_starts_at_its_first_fw_cfg_selection_and_hands_over_at_kernel_entry() {
        let lines: Vec<&str> = QBOOT_TRACE.lines().collect();
        let ev = first_events(FirmwareLog::FwCfgTrace, QBOOT_TRACE);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0], (event::FIRMWARE_START, 1));
        assert!(lines[0].contains("'signature'"));
        let (name, h) = ev[1];
        assert_eq!(name, event::FIRMWARE_HANDOVER);
        assert!(lines[h - 1].contains("'kernel_entry'"));
        // qboot read the kernel's and initrd's sizes (and loaded them) before it.
        for key in ["'kernel_size'", "'initdr_size'", "'cmdline_data'"] {
            assert!(lines[..h - 1].iter().any(|l| l.contains(key)), "{key}");
        }
        // QEMU's own fw_cfg set-up lines are not the firmware's.
        let add = "fw_cfg_add_bytes key 0x0000 'signature', 4 bytes";
        assert_eq!(FirmwareLog::FwCfgTrace.event(add), None);
    }

    #[test]
    fn the_kernels_first_console_line_is_found_behind_seabios_text() {
        let first = SEABIOS_SERIAL.lines().find(|l| is_kernel_line(l)).unwrap();
        assert!(first.starts_with("Booting from ROM..[    0.000000] Linux version"));
        // SeaBIOS's own serial output (behind terminal escapes) is not the kernel's.
        let banner = SEABIOS_SERIAL.lines().next().unwrap();
        assert!(banner.contains("SeaBIOS (version"));
        assert!(!is_kernel_line(banner));
        assert!(!is_kernel_line("[ 1.] x"));
        assert!(!is_kernel_line("[abc] [ 12 ]"));
        assert!(is_kernel_line("[   12.345678] Run /init as init process"));
    }

    #[test]
    fn ovmf_starts_at_its_first_fw_cfg_selection_and_never_selects_kernel_entry() {
        let lines: Vec<&str> = OVMF_TRACE.lines().collect();
        let ev = first_events(FirmwareLog::FwCfgTrace, OVMF_TRACE);
        // The EFI path loads the kernel as a PE image: no `kernel_entry` selection, so
        // the hand-over is not in this log (it is the EFI stub's serial line).
        assert_eq!(ev, [(event::FIRMWARE_START, 1)]);
        assert!(lines[0].contains("'signature'"));
        // OVMF read the kernel through fw_cfg (at DXE), long before it started it.
        let kernel = lines
            .iter()
            .position(|l| l.contains("'kernel_data'"))
            .unwrap();
        assert!(kernel > 0 && kernel + 1 < lines.len());
        assert!(!OVMF_TRACE.contains("'kernel_entry'"));
    }

    #[test]
    fn after_ovmf_the_efi_stubs_line_comes_first_then_the_kernels() {
        let lines: Vec<&str> = OVMF_SERIAL.lines().collect();
        // The first serial line: OVMF's console escapes, then the EFI stub.
        assert!(lines[0].starts_with('\u{1b}'));
        assert!(is_efi_stub_line(lines[0]));
        assert!(!is_kernel_line(lines[0]));
        assert!(lines[0].contains("EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID"));
        let stub = lines.iter().filter(|l| is_efi_stub_line(l)).count();
        assert_eq!(stub, 1);
        let first = lines.iter().position(|l| is_kernel_line(l)).unwrap();
        assert_eq!(first, 1);
        assert!(lines[first].contains("] Linux version 6.1"));
        // The same guest-init markers as every row follow.
        let init = lines
            .iter()
            .position(|l| l.starts_with("@@bootlab init-start"))
            .unwrap();
        assert!(init > first);
    }
}
