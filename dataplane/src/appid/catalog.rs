//! The application catalog (filled in next).
