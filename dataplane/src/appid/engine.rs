//! The classification engine (filled in next).
