//! Fixtures shared by every test binary: Coder JSON bodies and fast options (`coder`), running
//! the built `fleet` with a clean environment (`reliability`).
#![allow(dead_code, unused_imports)]

pub mod coder;
pub mod reliability;
