//! The bootlab marker port: the guest writes one byte, the event's code
//! (`timeline::marker::Marker::code`), and the monitor stamps the VM exit.

use super::Recorder;
use timeline::marker::Marker;
use timeline::EventSource;

/// The marker port (see `timeline::marker::MARKER_PORT`).
pub const PORT: u16 = timeline::marker::MARKER_PORT;

/// Handles a write of `code`; unknown codes are logged and ignored.
pub fn write(recorder: &Recorder, code: u8) {
    match Marker::from_code(code) {
        Some(m) => recorder.stamp(m.name(), EventSource::Monitor),
        None => log::debug!("unknown marker code {code}"),
    }
}
