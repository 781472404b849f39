//! The shared engine corpus harness (being written).
