//! The part of the i8042 keyboard controller a guest uses to reset the machine:
//! command 0xfe ("pulse reset line") on the command port, as Linux does with
//! `reboot=k`. Reads return 0 (no data, input buffer empty).

/// i8042 data port.
pub const DATA_PORT: u16 = 0x60;
/// i8042 command/status port.
pub const COMMAND_PORT: u16 = 0x64;
/// Command: pulse the CPU reset line.
pub const CMD_RESET_CPU: u8 = 0xfe;

/// Whether a command-port write resets the machine.
pub fn is_reset(value: u8) -> bool {
    value == CMD_RESET_CPU
}
