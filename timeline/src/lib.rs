//! The phase model and marker protocol shared by the monitor (`vmm`), the sandbox
//! (`container`), the harness (`bench`) and the guest init (`guest-init`).
//!
//! Every run is a list of [`Event`]s stamped with the host's CLOCK_MONOTONIC in
//! nanoseconds. Because that clock is system-wide, a runtime process and the harness
//! that spawned it can stamp events independently and still agree. Phases are derived
//! from events by [`Timeline::phases`] using a [`PhaseModel`]; a phase whose boundary
//! event is missing is merged with its neighbour and named so (`vmm+kernel`), never
//! guessed (see docs/ARCHITECTURE.md, "The phase model").

pub mod clock;
pub mod marker;
pub mod measure;
pub mod model;
pub mod names;

pub use clock::now_ns;
pub use model::{
    Event, EventSource, Phase, PhaseModel, Timeline, CONTAINER_MODEL, FIRMWARE_VM_MODEL,
    RESTORED_VM_MODEL, VM_MODEL,
};
pub use names::{event, step};
