//! The benchmark harness: runners, phase timelines, statistics and reports (see shared/DESIGN.md).
